"""Relevance datasets: BEIR-format folders, LoCoMo conversations and agent sessions, mapped
onto ctxsearch events.

A BEIR document becomes one `note` event in a session of its own (event id and session id
are the document id). A LoCoMo conversation becomes a project, each `session_N` a session
and each turn a `message` event whose id is its `dia_id`. An agent-sessions folder holds
ctxsearch events already (`events.jsonl`); each of its projects becomes a corpus, and each
query (`queries.jsonl`) names the session it should find first.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Bump when the way a dataset becomes events changes, so that a stale load is not reused.
MAPPING_VERSION = "2"

_DIA_ID = re.compile(r"D\d+:\d+")
_SESSION_KEY = re.compile(r"^session_(\d+)$")
_BEIR_BASE_TIME = datetime(2020, 1, 1, tzinfo=UTC)


class DatasetError(ValueError):
    """A dataset path or file that cannot be read; the message says what is wrong."""


@dataclass
class Query:
    id: str
    text: str
    relevant: dict[str, int]  # document (BEIR) or dia_id (LoCoMo) -> graded relevance
    category: str | None = None
    sessions: set[str] = field(default_factory=set)  # LoCoMo, sessions: the sessions to find


@dataclass
class Corpus:
    """One project's worth of events plus the queries judged against it."""

    name: str
    project_id: str
    events: list[dict]
    queries: list[Query]


@dataclass
class Dataset:
    name: str
    kind: str  # "beir", "locomo" or "sessions"
    corpora: list[Corpus]
    split: str | None = None  # BEIR: the judgments in use


def _digest(*parts: bytes) -> str:
    h = hashlib.blake2b(digest_size=6)
    for p in parts:
        h.update(p)
    h.update(MAPPING_VERSION.encode())
    return h.hexdigest()


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{n}: not JSON ({exc.msg})") from None
    return rows


# -- BEIR ----------------------------------------------------------------------


def beir_splits(folder: Path) -> list[str]:
    return sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))


def load_beir(folder: Path, split: str | None = None) -> Dataset:
    """A BEIR folder: corpus.jsonl (`_id`, `title`, `text`), queries.jsonl (`_id`, `text`), qrels/SPLIT.tsv."""
    folder = Path(folder)
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / name).is_file():
            raise DatasetError(f"{folder} is not a BEIR folder: {name} is missing")
    splits = beir_splits(folder)
    if not splits:
        raise DatasetError(f"{folder}/qrels holds no SPLIT.tsv judgments")
    if split is None:
        split = "test" if "test" in splits else splits[0]
    if split not in splits:
        raise DatasetError(f"split {split!r} has no judgments in {folder}/qrels (have: {', '.join(splits)})")

    corpus_path = folder / "corpus.jsonl"
    docs = _read_jsonl(corpus_path)
    events = []
    for n, d in enumerate(docs):
        if "_id" not in d:
            raise DatasetError(f"{corpus_path}: document {n + 1} has no _id")
        doc_id = str(d["_id"])
        events.append(
            {
                "id": doc_id,
                "session_id": doc_id,
                "type": "note",
                "timestamp": (_BEIR_BASE_TIME + timedelta(seconds=n)).isoformat(),
                "content": beir_document_text(d.get("title", ""), d.get("text", "")),
            }
        )

    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / f"{split}.tsv").open(encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) < 3 or row[0] == "query-id":
                continue
            if int(row[2]) > 0:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    texts = {str(q["_id"]): q.get("text", "") for q in _read_jsonl(folder / "queries.jsonl")}
    queries = [Query(id=qid, text=texts[qid], relevant=rel) for qid, rel in qrels.items() if texts.get(qid)]

    stat = corpus_path.stat()
    project = f"eval-{folder.name}-{_digest(str(corpus_path.resolve()).encode(), str(stat.st_size).encode(), str(int(stat.st_mtime)).encode())}"
    return Dataset(name=folder.name, kind="beir", corpora=[Corpus(folder.name, project, events, queries)], split=split)


def beir_document_text(title: str, text: str) -> str:
    title = (title or "").strip()
    return f"{title}\n\n{text}".strip() if title else (text or "").strip()


# -- LoCoMo --------------------------------------------------------------------


def parse_locomo_date(value: str) -> datetime:
    """LoCoMo session dates read like '1:56 pm on 8 May, 2023'."""
    try:
        return datetime.strptime(" ".join(value.split()), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)
    except ValueError:
        raise DatasetError(f"unreadable LoCoMo session date {value!r}") from None


def locomo_turn_text(turn: dict) -> str:
    """The speaker, what they said, and the caption of a shared image."""
    text = f"{turn.get('speaker', '').strip()}: {turn.get('text', '').strip()}".strip(": ")
    caption = (turn.get("blip_caption") or "").strip()
    if caption:
        text += f" [shares an image: {caption}]"
    return text


def evidence_ids(evidence: list) -> list[str]:
    """Gold dia_ids; a few evidence strings are malformed ('D8:6; D9:17'), so read them by pattern."""
    out: list[str] = []
    for item in evidence or []:
        for m in _DIA_ID.findall(str(item)):
            if m not in out:
                out.append(m)
    return out


def locomo_conversation(sample: dict, source_digest: str) -> Corpus:
    sample_id = str(sample.get("sample_id", "conv"))
    conv = sample.get("conversation")
    if not isinstance(conv, dict):
        raise DatasetError(f"LoCoMo sample {sample_id}: no conversation object")
    events: list[dict] = []
    session_of: dict[str, str] = {}
    numbers = sorted(int(m.group(1)) for k in conv if (m := _SESSION_KEY.match(k)))
    for n in numbers:
        turns = conv[f"session_{n}"]
        if not turns:
            continue
        start = parse_locomo_date(conv.get(f"session_{n}_date_time", ""))
        session_id = f"session_{n}"
        for i, turn in enumerate(turns):
            dia_id = str(turn["dia_id"])
            session_of[dia_id] = session_id
            events.append(
                {
                    "id": dia_id,
                    "session_id": session_id,
                    "type": "message",
                    "timestamp": (start + timedelta(seconds=30 * i)).isoformat(),
                    "content": locomo_turn_text(turn),
                }
            )
    queries = []
    for i, qa in enumerate(sample.get("qa", [])):
        gold = [d for d in evidence_ids(qa.get("evidence", [])) if d in session_of]
        if not gold or not qa.get("question"):
            continue
        queries.append(
            Query(
                id=f"{sample_id}-q{i}",
                text=str(qa["question"]),
                relevant={d: 1 for d in gold},
                category=str(qa.get("category")),
                sessions={session_of[d] for d in gold},
            )
        )
    return Corpus(sample_id, f"eval-locomo-{sample_id}-{source_digest}", events, queries)


def load_locomo(path: Path) -> Dataset:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not JSON ({exc.msg})") from None
    if isinstance(data, dict):
        data = [data]
    if not is_locomo(data):
        raise DatasetError(f"{path} is not LoCoMo JSON (a list of samples with 'conversation' and 'qa')")
    digest = _digest(path.read_bytes())
    return Dataset(name=path.stem, kind="locomo", corpora=[locomo_conversation(s, digest) for s in data])


def is_locomo(data) -> bool:
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(s, dict) and "conversation" in s and "qa" in s for s in data)
    )


# -- agent sessions --------------------------------------------------------------

SESSION_FILES = ("events.jsonl", "queries.jsonl")


def is_sessions_folder(folder: Path) -> bool:
    return all((folder / name).is_file() for name in SESSION_FILES)


def load_sessions(folder: Path) -> Dataset:
    """An agent-sessions folder: events.jsonl (events as `POST /v1/events` takes them) and
    queries.jsonl (`project_id`, `query`, `expected_session`, `kind`), one corpus per project."""
    folder = Path(folder)
    for name in SESSION_FILES:
        if not (folder / name).is_file():
            raise DatasetError(f"{folder} is not an agent-sessions folder: {name} is missing")
    events_path, queries_path = folder / "events.jsonl", folder / "queries.jsonl"
    by_project: dict[str, list[dict]] = {}
    for n, e in enumerate(_read_jsonl(events_path), 1):
        if not isinstance(e, dict) or not e.get("project_id") or not e.get("session_id"):
            raise DatasetError(f"{events_path}: event {n} has no project_id or session_id")
        e = dict(e)
        by_project.setdefault(str(e.pop("project_id")), []).append(e)
    queries: dict[str, list[Query]] = {p: [] for p in by_project}
    sessions_of = {p: {str(e["session_id"]) for e in evs} for p, evs in by_project.items()}
    seen: set[str] = set()
    for n, q in enumerate(_read_jsonl(queries_path), 1):
        where = f"{queries_path}: query {n}"
        if not isinstance(q, dict) or not q.get("query") or not q.get("expected_session"):
            raise DatasetError(f"{where} has no query or expected_session")
        project, expected = str(q.get("project_id", "")), str(q["expected_session"])
        if project not in by_project:
            raise DatasetError(f"{where}: project {project!r} has no events")
        if expected not in sessions_of[project]:
            raise DatasetError(f"{where}: expected_session {expected!r} is not a session of {project!r}")
        # The position among the queries, from 0: the ids `ctxsearch tune` gives the same queries.
        qid = str(q.get("id") or f"{project}-q{n - 1}")
        if qid in seen:
            raise DatasetError(f"{where}: query id {qid!r} is used twice")
        seen.add(qid)
        queries[project].append(
            Query(
                id=qid,
                text=str(q["query"]),
                relevant={expected: 1},
                category=str(q.get("kind") or "unknown"),
                sessions={expected},
            )
        )
    corpora = []
    for project in sorted(by_project):
        events = by_project[project]
        # Per project, so a change to one project reloads that project only.
        digest = _digest(json.dumps(events, sort_keys=True).encode())
        corpora.append(Corpus(project, f"eval-{folder.name}-{project}-{digest}", events, queries[project]))
    return Dataset(name=folder.name, kind="sessions", corpora=corpora)


# -- resolving a DATASET argument -----------------------------------------------

SHORT_NAMES = {"scifact": "scifact", "locomo": "locomo/locomo-dev.json", "agent-sessions": "agent-sessions"}


def shared_datasets_dir() -> Path:
    return Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def resolve(name_or_path: str) -> Path:
    """A path, or a short name (`scifact`, `locomo`, `agent-sessions`) found under
    ../shared/datasets next to the repo."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    if name_or_path in SHORT_NAMES:
        candidate = shared_datasets_dir() / SHORT_NAMES[name_or_path]
        if candidate.exists():
            return candidate
        raise DatasetError(f"dataset {name_or_path!r} is not at {candidate}; pass a path instead")
    raise DatasetError(
        f"no such dataset: {name_or_path!r} (a BEIR folder, a LoCoMo JSON file, an agent-sessions folder,"
        f" or one of {', '.join(SHORT_NAMES)})"
    )


def load(name_or_path: str, split: str | None = None) -> Dataset:
    """Detect the format by shape: a folder with corpus.jsonl is BEIR, one with events.jsonl and
    queries.jsonl is agent sessions, a JSON file of samples is LoCoMo."""
    path = resolve(name_or_path)
    if path.is_dir():
        if (path / "corpus.jsonl").is_file():
            return load_beir(path, split)
        if is_sessions_folder(path):
            return load_sessions(path)
        raise DatasetError(
            f"{path} is a folder without corpus.jsonl (BEIR) or events.jsonl and queries.jsonl (agent sessions)"
        )
    return load_locomo(path)  # LoCoMo has no splits: every question is judged
