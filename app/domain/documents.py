"""How events and summaries become searchable documents."""

from __future__ import annotations

import re

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def event_title(type_: str, tool: str | None, files: list[str]) -> str:
    parts = [type_.replace("_", " ")]
    if tool:
        parts.append(tool)
    if files:
        more = f" (+{len(files) - 1})" if len(files) > 1 else ""
        parts.append(files[0] + more)
    return " · ".join(parts)


def path_terms(files: list[str], limit: int = 20) -> str:
    """File paths spelled out so that a query for `login.py`, `login` or `auth` finds `src/auth/login.py`."""
    terms: list[str] = []
    for f in files[:limit]:
        # Plain string splitting (as PurePosixPath would split them), on every event of an ingest.
        parts = [p for p in f.replace("\\", "/").split("/") if p and p != "."]
        name = parts[-1] if parts else ""
        terms.append(f)
        terms.append(name)
        stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
        if stem != name:
            terms.append(stem)
        terms.extend(p for p in parts[:-1] if p != "..")
    return " ".join(terms)


# snake_case names (`fit_sessions`, `_free_port`): the text parser splits them at each
# underscore into common words, so each is also indexed whole, underscores dropped.
_SNAKE = re.compile(r"\b_*[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+\b")


def snake_terms(text: str) -> set[str]:
    return {m.replace("_", "").lower() for m in _SNAKE.findall(text)}


def identifier_terms(text: str) -> str:
    """camelCase and PascalCase identifiers split into words, and snake_case ones joined into
    one, added beside the original."""
    text = text[:20000]
    extra = {_CAMEL.sub(" ", tok) for tok in re.findall(r"\b[A-Za-z][A-Za-z0-9]*[a-z][A-Z][A-Za-z0-9]*\b", text)}
    return " ".join(sorted(extra | snake_terms(text)))


def text_query(query: str) -> str:
    """The words the text arm looks for: the query, and its snake_case names whole (as
    identifier_terms indexes them), so `fit_sessions` matches that name, not any `fit`."""
    joined = sorted(snake_terms(query))
    return f"{query} {' '.join(joined)}" if joined else query


def search_title(title: str, files: list[str], body: str) -> str:
    """The A-weighted text of a document: its title, file names and split identifiers."""
    return " ".join(t for t in (title, path_terms(files), identifier_terms(body)) if t)


def event_body(content: str, tool: str | None, files: list[str]) -> str:
    if content.strip():
        return content
    return " ".join([tool or "", *files[:20]]).strip()


def embed_text(title: str, body: str, kind: str, context: str | None = None) -> str:
    """The text the model sees. Events: their content (a title of type and tool adds only noise),
    then the event before it in the session, which often says what a short event is about."""
    if kind == "summary":
        return f"{title}. {body}"
    text = body or title
    return f"{text}\n\n{context}" if context else text


def context_snippet(previous: str, limit: int) -> str | None:
    """The end of the previous event's text, at most `limit` characters, on a word boundary."""
    if limit <= 0:
        return None
    # Only the end is kept: normalise the whitespace of that much, not of a long output.
    text = " ".join(previous[-(4 * limit + 64) :].split())
    if not text:
        return None
    if len(text) > limit:
        text = text[-limit:]
        text = text[text.find(" ") + 1 :] if " " in text else text
    return text
