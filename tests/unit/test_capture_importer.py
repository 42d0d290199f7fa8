"""The import driver: state file, incremental imports, exclusion, batching, failures, speed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ctxsearch.capture import claude_code
from ctxsearch.capture.importer import (
    CountingSink,
    ImportReport,
    ImportState,
    SendResult,
    ignored_dir,
    import_claude_code,
    import_codex,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "capture"
SID = "7d1c0f7e-3b0a-4a53-9d5e-2f4c1b8e6a10"
FIXTURE_CWD = "/home/dana/src/Shop-API"


class RecordingSink:
    def __init__(self, fail_on_batch: int | None = None):
        self.batches: list[list[dict]] = []
        self.titles: list[tuple[str, str, str]] = []
        self.stored: set[tuple[str, str]] = set()
        self.fail_on_batch = fail_on_batch

    def send(self, events):
        if self.fail_on_batch is not None and len(self.batches) + 1 == self.fail_on_batch:
            self.fail_on_batch = None
            raise ConnectionError("service down")
        self.batches.append(list(events))
        new = [e for e in events if (e["project_id"], e["id"]) not in self.stored]
        self.stored.update((e["project_id"], e["id"]) for e in events)
        return SendResult(accepted=len(new), duplicates=len(events) - len(new), redactions=1)

    def set_title(self, project_id, session_id, title):
        self.titles.append((project_id, session_id, title))

    @property
    def events(self):
        return [e for b in self.batches for e in b]


@pytest.fixture
def projects(tmp_path):
    """The Claude Code fixture under tmp_path, its cwd pointing at a real folder there."""
    cwd = tmp_path / "work" / "Shop-API"
    cwd.mkdir(parents=True)
    src = DATA / "claude-code" / "projects"
    dst = tmp_path / "claude" / "projects"
    for path in src.rglob("*.jsonl"):
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text().replace(FIXTURE_CWD, str(cwd)))
    return dst


def main_file(projects: Path) -> Path:
    return next(projects.glob(f"*/{SID}.jsonl"))


# -- ImportState ----------------------------------------------------------------------------------------


def test_state_load_save_round_trip(tmp_path):
    path = tmp_path / "sub" / "state.json"
    st = ImportState.load(path)
    assert st.files == {} and st.problems == []
    st.put(tmp_path / "a.jsonl", {"offset": 10, "size": 10})
    st.save()
    assert json.loads(path.read_text())["files"][str((tmp_path / "a.jsonl").absolute())]["offset"] == 10
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temp file left behind
    assert ImportState.load(path).get(tmp_path / "a.jsonl") == {"offset": 10, "size": 10}


def test_unreadable_state_starts_over(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{oops")
    st = ImportState.load(path)
    assert st.files == {} and "unreadable import state" in st.problems[0]
    rep = import_claude_code(tmp_path / "nothing", sink=CountingSink(), state=st)
    assert rep.problems == [] and rep.files == 0  # the caller reports state.problems


# -- importing -----------------------------------------------------------------------------------------


def test_import_sends_every_event_once_in_order(projects, tmp_path):
    sink = RecordingSink()
    state = ImportState.load(tmp_path / "state.json")
    rep = import_claude_code(projects.parent, sink=sink, state=state, batch_size=7)
    main = claude_code.read_claude_code(main_file(projects))
    sub = claude_code.read_claude_code(
        next(projects.rglob("agent-*.jsonl")), state={"cwd": main.cwd, "project": main.project_id}
    )
    assert sink.events == main.events + sub.events
    assert all(len(b) <= 7 for b in sink.batches) and len(sink.batches) == -(-len(sink.events) // 7)
    assert isinstance(rep, ImportReport)
    assert (rep.files, rep.sessions, rep.events, rep.accepted, rep.duplicates) == (
        2,
        1,
        len(sink.events),
        len(sink.events),
        0,
    )
    assert rep.skipped_lines == 1 and rep.redactions == len(sink.batches) and rep.problems == []
    assert sink.titles == [("shop-api", SID, "Fix checkout crash on empty cart")]
    assert {e["session_id"] for e in sink.events} == {SID}
    again = import_claude_code(projects.parent, sink=sink, state=ImportState.load(tmp_path / "state.json"))
    assert (again.files, again.events) == (0, 0) and sink.titles[1:] == []


def test_appending_half_then_the_rest_imports_each_event_once(projects, tmp_path):
    path = main_file(projects)
    data = path.read_bytes()
    full = [e["id"] for e in claude_code.read_claude_code(path).events]
    sub = next(projects.rglob("agent-*.jsonl"))
    sub.unlink()
    for cut in (len(data) // 2, len(data) // 3, data.index(b'"name":"Edit"')):
        sink = RecordingSink()
        state_path = tmp_path / f"state-{cut}.json"
        path.write_bytes(data[:cut])
        import_claude_code(projects, sink=sink, state=ImportState.load(state_path))
        first = len(sink.events)
        with path.open("ab") as fh:
            fh.write(data[cut:])
        rep = import_claude_code(projects, sink=sink, state=ImportState.load(state_path))
        assert [e["id"] for e in sink.events] == full, f"cut at {cut}"
        assert rep.duplicates == 0 and rep.events == len(full) - first


def test_a_file_that_shrank_or_was_replaced_is_read_from_zero(projects, tmp_path):
    path = main_file(projects)
    state_path = tmp_path / "state.json"
    sink = RecordingSink()
    first = import_claude_code(projects, sink=sink, state=ImportState.load(state_path))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:10]))  # truncated: shorter than what was read
    rep = import_claude_code(projects, sink=sink, state=ImportState.load(state_path))
    assert rep.files == 1 and rep.events > 0 and rep.accepted == 0 and rep.duplicates == rep.events
    replacement = path.with_suffix(".new")
    replacement.write_text("".join(lines))
    os.replace(replacement, path)  # same content, new inode
    rep = import_claude_code(projects, sink=sink, state=ImportState.load(state_path))
    assert rep.files == 1 and rep.duplicates == first.events - 3  # the subagent file was not touched
    entry = ImportState.load(state_path).get(path)
    assert entry["inode"] == path.stat().st_ino and entry["offset"] == path.stat().st_size


@pytest.mark.parametrize("exclude", [["shop-*"], ["other", "SHOP-API"], ["*"]])
def test_excluded_projects_are_skipped(projects, tmp_path, exclude):
    sink = RecordingSink()
    rep = import_claude_code(projects, sink=sink, state=ImportState(tmp_path / "s.json"), exclude=exclude)
    assert sink.events == [] and rep.excluded_projects == 1 and rep.files == 0


@pytest.mark.parametrize("where", ["cwd", "parent", "root_of_tmp"])
def test_ctxsearch_ignore_in_cwd_or_a_parent_skips_the_session(projects, tmp_path, where):
    cwd = tmp_path / "work" / "Shop-API"
    folder = {"cwd": cwd, "parent": cwd.parent, "root_of_tmp": tmp_path}[where]
    (folder / ".ctxsearch-ignore").write_text("")
    assert ignored_dir(str(cwd)) and not ignored_dir(str(tmp_path.parent))
    sink = RecordingSink()
    rep = import_claude_code(projects, sink=sink, state=ImportState(None))
    assert sink.events == [] and rep.excluded_projects == 1
    (folder / ".ctxsearch-ignore").unlink()
    rep = import_claude_code(projects, sink=sink, state=ImportState(None))
    assert rep.events > 0 and rep.excluded_projects == 0


def test_only_one_transcript_with_its_subagents(projects, tmp_path):
    other_dir = projects / "-home-dana-src-other"
    other_dir.mkdir()
    (other_dir / "aaaa.jsonl").write_text(
        json.dumps(
            {
                "type": "user",
                "sessionId": "aaaa",
                "cwd": "/home/dana/src/other",
                "uuid": "x1",
                "timestamp": "2026-01-01T00:00:00Z",
                "message": {"role": "user", "content": "hello"},
            }
        )
        + "\n"
    )
    sink = RecordingSink()
    rep = import_claude_code(projects, sink=sink, state=ImportState(None), only=main_file(projects))
    assert rep.files == 2 and {e["project_id"] for e in sink.events} == {"shop-api"}
    assert any(e["payload"] and e["payload"].get("sidechain") for e in sink.events)
    everything = import_claude_code(projects, sink=CountingSink(), state=ImportState(None))
    assert everything.files == 3 and everything.sessions == 2


def test_project_override(projects):
    sink = RecordingSink()
    import_claude_code(projects, sink=sink, state=ImportState(None), project="My Shop")
    assert {e["project_id"] for e in sink.events} == {"my-shop"}


def test_a_read_failure_sends_nothing_for_that_file(projects, tmp_path, monkeypatch):
    real = claude_code.read_claude_code

    def flaky(path, **kw):
        if Path(path).name.startswith("agent-"):
            raise PermissionError(13, "Permission denied")
        return real(path, **kw)

    monkeypatch.setattr(claude_code, "read_claude_code", flaky)
    sink = RecordingSink()
    state = ImportState(tmp_path / "s.json")
    rep = import_claude_code(projects, sink=sink, state=state)
    assert rep.files == 1 and len(rep.problems) == 1 and "cannot read (Permission denied)" in rep.problems[0]
    assert not any(e["payload"] and e["payload"].get("sidechain") for e in sink.events)
    assert state.get(next(projects.rglob("agent-*.jsonl"))) is None
    monkeypatch.setattr(claude_code, "read_claude_code", real)
    rep = import_claude_code(projects, sink=sink, state=ImportState.load(tmp_path / "s.json"))
    assert rep.files == 1 and rep.events == 3 and rep.duplicates == 0


def test_a_sink_failure_loses_nothing(projects, tmp_path):
    sink = RecordingSink(fail_on_batch=2)
    state_path = tmp_path / "s.json"
    with pytest.raises(ConnectionError):
        import_claude_code(projects, sink=sink, state=ImportState.load(state_path), batch_size=5)
    assert ImportState.load(state_path).files == {}  # the main file's events were not all accepted
    rep = import_claude_code(projects, sink=sink, state=ImportState.load(state_path), batch_size=5)
    full = CountingSink()
    import_claude_code(projects, sink=full, state=ImportState(None))
    # The batch in flight when the failure surfaced may have been stored: it is resent, never lost.
    assert len(sink.stored) == full.events and rep.accepted + rep.duplicates == full.events
    assert 5 <= rep.duplicates <= 10


def test_held_calls_wait_for_their_result_or_for_the_file_to_settle(tmp_path):
    folder = tmp_path / "projects" / "-w-app"
    folder.mkdir(parents=True)
    path = folder / "s1.jsonl"
    base = {"type": "assistant", "sessionId": "s1", "cwd": "/w/app", "timestamp": "2026-01-01T00:00:00Z"}
    path.write_text(
        json.dumps(
            {
                **base,
                "uuid": "a1",
                "message": {
                    "id": "m1",
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "sleep 60"}}],
                },
            }
        )
        + "\n"
    )
    state_path = tmp_path / "s.json"
    sink = RecordingSink()
    rep = import_claude_code(tmp_path / "projects", sink=sink, state=ImportState.load(state_path))
    assert rep.events == 0 and rep.held == 1 and ImportState.load(state_path).get(path)["offset"] == 0
    rep = import_claude_code(tmp_path / "projects", sink=sink, state=ImportState.load(state_path))
    assert rep.files == 0 and rep.held == 1  # unchanged and recent: not read again
    rep = import_claude_code(tmp_path / "projects", sink=sink, state=ImportState.load(state_path), settle_seconds=0)
    assert rep.events == 1 and rep.held == 0 and sink.events[0]["payload"]["result"] == "missing"


def test_codex_import_and_reimport(tmp_path):
    sink = RecordingSink()
    state_path = tmp_path / "s.json"
    rep = import_codex(DATA / "codex", sink=sink, state=ImportState.load(state_path), batch_size=4)
    assert rep.files == 2 and rep.sessions == 2 and rep.problems == [] and rep.skipped_lines == 1
    assert {e["project_id"] for e in sink.events} == {"billing", "legacy-app"}
    assert rep.accepted == rep.events == len(sink.events)
    again = import_codex(DATA / "codex", sink=sink, state=ImportState.load(state_path))
    assert again.files == 0 and again.events == 0
    excluded = import_codex(DATA / "codex", sink=CountingSink(), state=ImportState(None), exclude=["bill*"])
    assert excluded.excluded_projects == 1 and excluded.files == 1


def test_progress_is_reported_per_session(projects):
    calls = []
    import_claude_code(
        projects,
        sink=CountingSink(),
        state=ImportState(None),
        progress=lambda done, total, report: calls.append((done, total, report.events)),
    )
    assert [c[:2] for c in calls] == [(1, 1)] and calls[0][2] > 0
