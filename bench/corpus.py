"""A synthetic but realistic corpus of coding-agent sessions for `ctxsearch bench`.

Every project has a domain (its own modules, functions, libraries and failure
modes), so its events cluster the way a real project's do; sessions work on a
few files at a time. Seed events are written from templates and embedded with
the real model. Beyond the seed sample, an event is a seed's text with its
numbers, identifiers and one clause changed, and its vector is the seed's real
vector plus a small Gaussian perturbation (cosine ~0.93 to the seed), which
keeps the cluster structure of real embeddings without embedding every text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

DOMAINS = {
    "payments": (
        ["checkout", "invoice", "refund", "ledger", "currency", "stripe_client"],
        ["compute_total", "apply_discount", "capture_payment", "issue_refund", "round_amount"],
        ["stripe", "decimal", "celery"],
        ["rounding error on totals", "double charge on retry", "webhook signature mismatch"],
    ),
    "auth": (
        ["login", "session", "tokens", "oauth", "permissions", "middleware"],
        ["verify_token", "refresh_session", "hash_password", "check_scope", "rotate_keys"],
        ["jwt", "bcrypt", "authlib"],
        ["expired token accepted", "session fixation", "redirect loop after login"],
    ),
    "search": (
        ["indexer", "ranking", "tokenizer", "query_parser", "snippets", "cache"],
        ["build_index", "score_bm25", "parse_query", "highlight", "merge_results"],
        ["elasticsearch", "whoosh", "lucene"],
        ["empty results for quoted phrase", "slow query on wildcard", "stale cache entries"],
    ),
    "infra": (
        ["deploy", "terraform", "k8s", "monitoring", "backup", "ci"],
        ["render_manifest", "rollout", "scrape_metrics", "restore_snapshot", "retry_step"],
        ["helm", "prometheus", "ansible"],
        ["pod crash loop", "disk full on runner", "timeout pulling image"],
    ),
    "frontend": (
        ["components", "router", "store", "forms", "styles", "i18n"],
        ["renderList", "useDebounce", "validateForm", "fetchProfile", "formatDate"],
        ["react", "redux", "vite"],
        ["hydration mismatch", "infinite re-render", "date shown in wrong timezone"],
    ),
    "data": (
        ["etl", "warehouse", "schemas", "loaders", "reports", "quality"],
        ["load_batch", "dedupe_rows", "cast_types", "partition_by_day", "validate_schema"],
        ["pandas", "pyarrow", "airflow"],
        ["duplicate rows after backfill", "null dates in parquet", "memory error on large join"],
    ),
    "ml": (
        ["training", "features", "evaluation", "serving", "tokenization", "datasets"],
        ["train_epoch", "compute_metrics", "export_model", "collate_batch", "predict"],
        ["torch", "sklearn", "onnx"],
        ["loss becomes nan", "shape mismatch in collate", "eval accuracy drops after refactor"],
    ),
    "mobile": (
        ["screens", "navigation", "offline_sync", "push", "camera", "settings"],
        ["syncQueue", "requestPermission", "renderScreen", "scheduleNotification", "cropImage"],
        ["kotlin", "swiftui", "expo"],
        ["crash on rotate", "sync conflict overwrites edits", "notifications arrive twice"],
    ),
}

_VERBS = ["fix", "refactor", "add", "speed up", "clean up", "document", "test", "rename"]
_DECISIONS = [
    "decided to {verb} {fn} in {file} because {issue} kept coming back; chose {lib} instead of a hand-written version",
    "we will keep {fn} synchronous for now: the async version made {issue} harder to reproduce",
    "chose to pin {lib} after {issue}; revisit when upstream ships the fix",
    "decision: move {fn} out of {file} into its own module so that tests stop importing {lib}",
]
_ERRORS = [
    'Traceback (most recent call last): File "{file}", line {n}, in {fn}: ValueError: {issue}',
    "{lib} raised TimeoutError after {n} ms in {fn} ({file})",
    "AssertionError in test_{fn}: expected {n} but got {m}; looks like {issue}",
    "KeyError: '{fn}' while loading config for {mod}; {issue}",
]
_MESSAGES = [
    "can you {verb} {fn} in {file}? users report {issue}",
    "why does {fn} call {lib} twice per request? it shows up as {issue}",
    "please look at {issue} in the {mod} module before the release",
    "the {mod} tests are flaky again, probably {issue}",
]
_TOOLS = [
    ("read_file", "read {file} ({n} lines) to understand how {fn} handles {mod} state"),
    ("grep", "searched for {fn} across the repo: {n} matches, mostly in {mod}"),
    ("run_command", "ran pytest tests/test_{mod}.py -k {fn}: {n} passed, {m} failed"),
    ("edit_file", "edited {file}: changed {fn} to validate input before calling {lib}"),
]
_TESTS = [
    "pytest tests/test_{mod}.py: {n} passed, {m} failed ({issue})",
    "all {n} tests passed in {mod} after fixing {fn}",
]
_COMMITS = ["{verb} {fn}: handle {issue}", "{mod}: {verb} {fn} and add a regression test for {issue}"]
_NOTES = ["remember that {fn} depends on {lib} config loaded in {file}", "TODO: {verb} {fn} once {issue} is understood"]
_EDITS = [
    "rewrote {fn} in {file} so that {issue} cannot happen; {n} lines changed",
    "extracted helper from {fn} in {file}, added type hints",
]

_TYPES = ["message", "tool_call", "file_edit", "decision", "error", "test_run", "commit", "note"]
_TYPE_WEIGHTS = [0.22, 0.35, 0.12, 0.04, 0.09, 0.08, 0.05, 0.05]
_TEMPLATES = {
    "message": _MESSAGES,
    "decision": _DECISIONS,
    "error": _ERRORS,
    "test_run": _TESTS,
    "commit": _COMMITS,
    "note": _NOTES,
    "file_edit": _EDITS,
}
_VARIANTS = [
    "",
    " again",
    " (second attempt)",
    " on the staging branch",
    " after rebasing",
    " in CI only",
    " with the new fixture",
    " for the nightly job",
]


@dataclass
class Project:
    project_id: str
    domain: str
    files: list[str]
    weight: float


@dataclass
class CorpusEvent:
    project_id: str
    session_id: str
    event_id: str
    ts: datetime
    type: str
    tool: str | None
    files: list[str]
    content: str
    tokens: int
    payload: dict | None
    seed: int = -1  # index of the seed whose vector this event derives from; -1: it is a seed
    extra: dict = field(default_factory=dict)

    def as_api(self) -> dict:
        return {
            "id": self.event_id,
            "project_id": self.project_id,
            "session_id": self.session_id,
            "timestamp": self.ts.isoformat(),
            "type": self.type,
            "tool": self.tool,
            "files": self.files,
            "content": self.content,
            "tokens": self.tokens,
            "payload": self.payload,
        }


def make_projects(n_docs: int, rng: random.Random, prefix: str = "bench") -> list[Project]:
    """About one project per 2,500 documents, sizes Zipf-like (a few large, many small)."""
    n = max(4, n_docs // 2500)
    domains = list(DOMAINS)
    projects = []
    for i in range(n):
        domain = domains[i % len(domains)]
        mods, fns, _, _ = DOMAINS[domain]
        root = rng.choice(["src", "app", "lib", "pkg"])
        files = [f"{root}/{m}/{f}.py" for m in mods for f in rng.sample(fns, 3)]
        projects.append(Project(f"{prefix}-{i:04d}-{domain}", domain, files, 1.0 / (i + 1) ** 0.8))
    return projects


class CorpusGenerator:
    """Events in session order, spread over projects by their weight."""

    def __init__(self, n_docs: int, seed: int = 7, prefix: str = "bench"):
        self.rng = random.Random(seed)
        self.projects = make_projects(n_docs, self.rng, prefix)
        self.weights = [p.weight for p in self.projects]
        self._t0 = datetime(2026, 1, 1, tzinfo=UTC)
        self._session_no = 0

    def _fill(self, template: str, project: Project, files: list[str]) -> str:
        mods, fns, libs, issues = DOMAINS[project.domain]
        r = self.rng
        file = r.choice(files)
        return template.format(
            verb=r.choice(_VERBS),
            fn=r.choice(fns),
            file=file,
            mod=file.split("/")[1],
            lib=r.choice(libs),
            issue=r.choice(issues),
            n=r.randint(2, 400),
            m=r.randint(0, 9),
        )

    def event(self, project: Project, session_id: str, n: int, ts: datetime, files: list[str]) -> CorpusEvent:
        r = self.rng
        type_ = r.choices(_TYPES, _TYPE_WEIGHTS)[0]
        tool = None
        payload = None
        if type_ == "tool_call":
            tool, template = r.choice(_TOOLS)
            payload = {"exit_code": r.choice([0, 0, 0, 1]), "duration_ms": r.randint(5, 5000)}
        else:
            template = r.choice(_TEMPLATES[type_])
            if type_ == "test_run":
                payload = {"passed": r.random() > 0.3}
        content = self._fill(template, project, files)
        touched = [r.choice(files)] if type_ in ("file_edit", "tool_call", "error", "commit") else []
        return CorpusEvent(
            project.project_id,
            session_id,
            f"{session_id}-{n}",
            ts,
            type_,
            tool,
            touched,
            content,
            len(content) // 4 + r.randint(10, 200),
            payload,
        )

    def sessions(self):
        """Endless sessions: lists of events of one session of a project chosen by weight."""
        r = self.rng
        while True:
            project = r.choices(self.projects, self.weights)[0]
            self._session_no += 1
            sid = f"s{self._session_no:07d}"
            files = r.sample(project.files, min(4, len(project.files)))
            ts = self._t0 + timedelta(minutes=7 * self._session_no)
            yield [self.event(project, sid, i, ts + timedelta(seconds=20 * i), files) for i in range(r.randint(10, 80))]

    def events(self, n: int) -> list[CorpusEvent]:
        out: list[CorpusEvent] = []
        for session in self.sessions():
            out.extend(session[: n - len(out)])
            if len(out) >= n:
                return out
        return out

    def derive(self, seed_event: CorpusEvent, seed_index: int, session_id: str, n: int, ts: datetime) -> CorpusEvent:
        """A variant of a seed event: new numbers, one clause changed, same meaning."""
        r = self.rng
        words = seed_event.content.split(" ")
        words = [str(r.randint(2, 400)) if w.isdigit() else w for w in words]
        content = " ".join(words) + r.choice(_VARIANTS)
        return CorpusEvent(
            seed_event.project_id,
            session_id,
            f"{session_id}-{n}",
            ts,
            seed_event.type,
            seed_event.tool,
            seed_event.files,
            content,
            seed_event.tokens,
            seed_event.payload,
            seed=seed_index,
        )

    def queries(self, n: int, counts: dict[str, int] | None = None) -> list[tuple[str, str]]:
        """(project_id, query) pairs as a user would ask them, projects chosen by weight
        (by their document counts when given: projects with no documents are not asked).

        Every text is distinct, so no query is answered from the embedding cache.
        """
        r = self.rng
        projects, weights = self.projects, self.weights
        if counts is not None:
            projects = [p for p in self.projects if counts.get(p.project_id)]
            weights = [counts[p.project_id] for p in projects]
        forms = [
            "why did {fn} fail with {issue}",
            "{issue} in {mod}",
            "how did we fix {issue}",
            "decision about {lib} in {mod}",
            "tests for {fn} failing",
            "where is {fn} defined",
            "{lib} timeout in {mod}",
            "changes to {fn}",
        ]
        prefixes = ["", "", "still seeing ", "customer reports ", "after the deploy: ", "regression: "]
        suffixes = ["", "", " yesterday", " on staging", " in CI", " since v{v}", " (ticket {v})"]
        seen: set[str] = set()
        out: list[tuple[str, str]] = []
        while len(out) < n:
            p = r.choices(projects, weights)[0]
            mods, fns, libs, issues = DOMAINS[p.domain]
            q = (r.choice(prefixes) + r.choice(forms) + r.choice(suffixes)).format(
                fn=r.choice(fns), issue=r.choice(issues), mod=r.choice(mods), lib=r.choice(libs), v=r.randint(1, 9999)
            )
            if q not in seen:
                seen.add(q)
                out.append((p.project_id, q))
        return out


def perturb(vectors: np.ndarray, rng: np.random.Generator, scale: float = 0.4) -> np.ndarray:
    """Real vectors moved by isotropic noise of norm ~scale, renormalised (cosine ~1/sqrt(1+scale^2))."""
    noise = rng.standard_normal(vectors.shape).astype(np.float32) * (scale / np.sqrt(vectors.shape[1]))
    out = vectors + noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)
