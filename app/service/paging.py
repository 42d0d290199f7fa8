"""Stable paging and token budgets for search results.

A cursor pins the first page's snapshot (the project's highest document id then:
ids only grow, so later documents are left out) and lists what was already
returned. Each page is the best of what is left, so pages never repeat a hit and
never skip one, even while new events arrive or a summary is rewritten. With
group=session the cursor lists the sessions returned instead, and each page ranks
the sessions still to return. Cursors are signed; a tampered or foreign cursor (one
of the other group included) is refused with a message naming it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

from ctxsearch.schemas import MAX_CURSOR_CHARS, SearchHit, SearchRequest, SessionHit

# Paging goes this deep; a cursor lists the ids already returned, so it must stay small.
MAX_PAGED_RESULTS = 1000
# Session ids are text of up to 256 characters: fewer of them fit a cursor.
MAX_PAGED_SESSIONS = 200
CURSOR_VERSION = 1

# Fields that define a result list; a cursor only continues the list it came from.
_QUERY_FIELDS = {
    "query",
    "project_id",
    "session_id",
    "types",
    "files",
    "since",
    "until",
    "kinds",
    "mode",
    "fusion",
    "rrf_k",
    "weights",
}


class InvalidCursor(ValueError):
    """A cursor that was altered, truncated, or belongs to another query."""


@dataclass
class PageState:
    snapshot_id: int | None = None
    seen_ids: list[int] = field(default_factory=list)
    seen_summaries: list[str] = field(default_factory=list)
    group: str = "event"
    seen_sessions: list[str] = field(default_factory=list)
    # group=session: how many ranked documents the returned sessions took up; each arm
    # fetches that many more, as it does for seen_ids.
    seen_rows: int = 0


def fingerprint(req: SearchRequest) -> str:
    canonical = json.dumps(req.model_dump(mode="json", include=_QUERY_FIELDS), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _sign(secret: str, body: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()[:16]).decode().rstrip("=")


# A cursor's JSON is at most this long: MAX_PAGED_RESULTS ids and the sessions' ids.
_MAX_CURSOR_JSON = 1 << 20
_MAX_DB_INT = 2**63 - 1


def _int(v) -> bool:
    return type(v) is int and 0 <= v <= _MAX_DB_INT


def _ints(v, most: int) -> bool:
    return type(v) is list and len(v) <= most and all(_int(x) for x in v)


def _strs(v, most: int) -> bool:
    return type(v) is list and len(v) <= most and all(type(x) is str and len(x) <= 1000 for x in v)


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(state: PageState, req: SearchRequest, secret: str) -> str | None:
    """The signed cursor for this state; None when it would be longer than a request may send
    (paging stops there)."""
    ids = sorted(state.seen_ids)
    deltas = [b - a for a, b in zip([0, *ids], ids, strict=False)]  # small numbers compress well
    doc = {
        "v": CURSOR_VERSION,
        "q": fingerprint(req),
        "m": state.snapshot_id,
        "i": deltas,
        "s": sorted(state.seen_summaries),
    }
    if state.group != "event":  # an event cursor stays as it was before groups existed
        doc["g"] = state.group
        doc["ss"] = sorted(state.seen_sessions)
        doc["n"] = state.seen_rows
    body = zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 9)
    payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
    cursor = f"{payload}.{_sign(secret, body)}"
    return cursor if len(cursor) <= MAX_CURSOR_CHARS else None


def decode_cursor(cursor: str, req: SearchRequest, secret: str) -> PageState:
    """Check the signature and that the cursor continues this query; raise InvalidCursor if not."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor(f"cursor: longer than {MAX_CURSOR_CHARS} characters")
    try:
        payload, signature = cursor.split(".")
        body = _b64decode(payload)
    except ValueError:
        raise InvalidCursor("cursor: not a cursor returned by this service") from None
    if not hmac.compare_digest(signature, _sign(secret, body)):
        raise InvalidCursor("cursor: signature does not match (altered, truncated, or from another server)")
    try:
        # A cursor this service wrote stays small when inflated; a bigger one is not its own.
        inflater = zlib.decompressobj()
        raw = inflater.decompress(body, _MAX_CURSOR_JSON)
        if inflater.unconsumed_tail:
            raise ValueError("inflates too far")
        doc = json.loads(raw)
        if doc["v"] != CURSOR_VERSION:
            raise InvalidCursor("cursor: from an incompatible version; start again without a cursor")
        deltas, summaries, sessions = doc["i"], doc["s"], doc.get("ss", [])
        snapshot, rows = doc["m"], doc.get("n", 0)
        if not (
            _ints(deltas, MAX_PAGED_RESULTS)
            and _strs(summaries, MAX_PAGED_RESULTS)
            and _strs(sessions, MAX_PAGED_SESSIONS)
            and (snapshot is None or _int(snapshot))
            and _int(rows)
        ):
            raise ValueError("fields of the wrong type or size")
        ids = list(itertools.accumulate(deltas))
        if ids and ids[-1] > _MAX_DB_INT:
            raise ValueError("ids beyond the database's")
        group = doc.get("g", "event")
        state = PageState(
            snapshot_id=snapshot,
            seen_ids=ids,
            seen_summaries=summaries,
            group=group,
            seen_sessions=sessions,
            seen_rows=rows,
        )
    except InvalidCursor:
        raise
    except (ValueError, KeyError, TypeError, zlib.error):
        raise InvalidCursor("cursor: not a cursor returned by this service") from None
    if state.group != req.group:
        raise InvalidCursor(
            f"cursor: continues a group={state.group} search, not this group={req.group} one; "
            "repeat the request that returned it, or start without a cursor"
        )
    if doc["q"] != fingerprint(req):
        raise InvalidCursor("cursor: belongs to a different query or filters; repeat the request that returned it")
    return state


class TokenCounter:
    """Counts tokens with the MiniLM (BERT WordPiece) tokenizer, the one the model embeds with.

    A private copy of the tokenizer, used under a lock: the embed worker changes the
    shared one's truncation settings while encoding. Given a transformers tokenizer (the
    torch backend's), it copies that one; otherwise it reads the bundled model's
    tokenizer.json, which every backend has.
    """

    def __init__(self, tokenizer: Any | None = None):
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_str(backend.to_str())
            self._tok.no_truncation()
            self._tok.no_padding()
        else:
            from ctxsearch.embeddings.model import wordpiece_tokenizer

            self._tok = wordpiece_tokenizer()
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        with self._lock:
            return len(self._tok.encode(text, add_special_tokens=False).ids)

    def cut(self, text: str, tokens: int) -> str:
        """The longest prefix of text holding at most `tokens` tokens."""
        if tokens <= 0:
            return ""
        with self._lock:
            offsets = self._tok.encode(text, add_special_tokens=False).offsets
        if len(offsets) <= tokens:
            return text
        return text[: offsets[tokens][0]].rstrip()


def hit_tokens(hit: SearchHit, counter: TokenCounter) -> int:
    """A hit's cost: the tokens of its JSON as a client receives it."""
    return counter.count(hit.model_dump_json(exclude_none=True))


# A snippet cut shorter than this is not worth its hit's metadata: the hit is left for the next page.
MIN_SNIPPET_TOKENS = 12


def _close_tags(snippet: str) -> str:
    # Never leave half a <b> tag or an unclosed highlight at the cut.
    cut = snippet.rfind("<")
    if cut != -1 and ">" not in snippet[cut:]:
        snippet = snippet[:cut]
    if snippet.count("<b>") > snippet.count("</b>"):
        snippet += "</b>"
    return snippet.rstrip()


def trim_hit(hit: SearchHit, budget: int, counter: TokenCounter) -> SearchHit | None:
    """The hit with its snippet cut so the whole hit fits `budget` tokens, or None if it cannot."""
    bare = hit.model_copy(update={"snippet": ""})
    room = budget - hit_tokens(bare, counter) - 1  # the ellipsis
    for _ in range(4):  # JSON escaping can make the cut count a little more than planned
        if room < 0:
            return None
        snippet = _close_tags(counter.cut(hit.snippet, room))
        trimmed = hit.model_copy(update={"snippet": snippet + "…" if snippet else ""})
        if hit_tokens(trimmed, counter) <= budget:
            return trimmed
        room -= 4
    return None


def fit_budget(hits: list[SearchHit], max_tokens: int, counter: TokenCounter) -> tuple[list[SearchHit], bool]:
    """Keep hits in rank order while they fit; cut the snippet of the first that does not.

    Returns the kept hits and whether anything was cut or dropped. The first hit is
    always kept (with as much snippet as fits) so that paging makes progress.
    """
    kept: list[SearchHit] = []
    used = 0
    for hit in hits:
        cost = hit_tokens(hit, counter)
        if used + cost <= max_tokens:
            kept.append(hit)
            used += cost
            continue
        room = max_tokens - used
        trimmed = trim_hit(hit, room, counter)
        if trimmed is not None and (not kept or _snippet_tokens(trimmed, counter) >= MIN_SNIPPET_TOKENS):
            kept.append(trimmed)
        elif not kept:
            kept.append(hit.model_copy(update={"snippet": ""}))
        return kept, True
    return kept, False


def _snippet_tokens(hit: SearchHit, counter: TokenCounter) -> int:
    return counter.count(hit.snippet)


def remember(state: PageState, returned: list[tuple[int, SearchHit]]) -> PageState:
    """The state after returning these (document id, hit) pairs: they, and the sessions of
    returned summaries, count as seen."""
    return PageState(
        snapshot_id=state.snapshot_id,
        seen_ids=[*state.seen_ids, *(doc_id for doc_id, _ in returned)],
        seen_summaries=[*state.seen_summaries, *(h.session_id for _, h in returned if h.kind == "summary")],
    )


def session_tokens(session: SessionHit, counter: TokenCounter) -> int:
    """A session's cost: the tokens of its JSON (evidence hits included) as a client receives it."""
    return counter.count(session.model_dump_json(exclude_none=True))


def trim_session(session: SessionHit, budget: int, counter: TokenCounter) -> SessionHit | None:
    """The session with as much of its evidence (best hits first, the last one's snippet cut)
    as fits `budget` tokens, or None if not even its first hit fits."""
    room = budget - session_tokens(session.model_copy(update={"hits": []}), counter)
    for _ in range(4):  # the list's commas: the whole can count a little more than its hits
        if room <= 0:
            return None
        hits, _ = fit_budget(session.hits, room, counter)
        if sum(hit_tokens(h, counter) for h in hits) > room:
            return None  # fit_budget keeps a first hit even when it does not fit
        trimmed = session.model_copy(update={"hits": hits})
        if session_tokens(trimmed, counter) <= budget:
            return trimmed
        room -= 4
    return None


def fit_sessions(sessions: list[SessionHit], max_tokens: int, counter: TokenCounter) -> tuple[list[SessionHit], bool]:
    """fit_budget for sessions: keep sessions in rank order while they fit, evidence included;
    the first that does not keeps the evidence that fits. The first session is always kept
    (with at least its best hit, snippet cut) so that paging makes progress."""
    kept: list[SessionHit] = []
    used = 0
    for session in sessions:
        cost = session_tokens(session, counter)
        if used + cost <= max_tokens:
            kept.append(session)
            used += cost
            continue
        trimmed = trim_session(session, max_tokens - used, counter)
        if trimmed is not None and (not kept or _snippet_tokens(trimmed.hits[0], counter) >= MIN_SNIPPET_TOKENS):
            kept.append(trimmed)
        elif not kept:
            best = session.hits[0].model_copy(update={"snippet": ""}) if session.hits else None
            kept.append(session.model_copy(update={"hits": [best] if best else []}))
        return kept, True
    return kept, False


# Listing cursors are signed apart from search cursors: one never passes for the other.
_KEYSET = "keyset:"


def encode_keyset(values: list, secret: str) -> str:
    """A signed cursor for a listing ordered by a key: the last row's key values (JSON)."""
    body = json.dumps(values, separators=(",", ":")).encode()
    return f"{base64.urlsafe_b64encode(body).decode().rstrip('=')}.{_sign(_KEYSET + secret, body)}"


def decode_keyset(cursor: str, secret: str, arity: int) -> list:
    """The key values of a listing cursor; InvalidCursor unless it is one this installation signed."""
    payload, _, signature = cursor.partition(".")
    try:
        body = _b64decode(payload)
    except ValueError:
        raise InvalidCursor("cursor: not a cursor of this listing") from None
    if not hmac.compare_digest(signature, _sign(_KEYSET + secret, body)):
        raise InvalidCursor("cursor: altered, or from another listing or installation")
    values = json.loads(body)
    if type(values) is not list or len(values) != arity:
        raise InvalidCursor("cursor: not a cursor of this listing")
    return values
