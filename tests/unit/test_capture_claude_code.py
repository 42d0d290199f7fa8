"""Claude Code transcripts -> events, on fixtures shaped like real Claude Code 2.1 transcripts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ctxsearch.capture.claude_code import find_sessions, read_claude_code, subagent_files

DATA = Path(__file__).resolve().parents[1] / "data" / "capture" / "claude-code" / "projects"
PROJECT_DIR = DATA / "-home-dana-src-Shop-API"
SID = "7d1c0f7e-3b0a-4a53-9d5e-2f4c1b8e6a10"
MAIN = PROJECT_DIR / f"{SID}.jsonl"
SUB = PROJECT_DIR / SID / "subagents" / "agent-a1b2c3d.jsonl"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
TYPES = {"message", "tool_call", "file_edit", "decision", "error", "test_run", "commit", "note"}


@pytest.fixture(scope="module")
def main():
    return read_claude_code(MAIN)


def by_type(result, type_):
    return [e for e in result.events if e["type"] == type_]


def lines_of(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


# -- the fixture as a whole --------------------------------------------------------------------------


def test_every_event_is_a_valid_event_in(main):
    assert main.problems == [] and main.held == 0
    ids = [e["id"] for e in main.events]
    assert len(ids) == len(set(ids))
    for e in main.events:
        assert set(e) == {
            "id",
            "project_id",
            "session_id",
            "timestamp",
            "type",
            "content",
            "tool",
            "files",
            "tokens",
            "payload",
        }
        assert e["project_id"] == "shop-api" and e["session_id"] == SID
        assert e["type"] in TYPES
        assert RFC3339.match(e["timestamp"])
        assert 1 <= len(e["id"]) <= 256 and not re.search(r"[\x00-\x1f]", e["id"])
        assert e["tool"] is None or (len(e["tool"]) <= 200 and e["tool"].strip())
        assert all(1 <= len(f) <= 1024 and not f.startswith("/home/dana/src/Shop-API") for f in e["files"])
        assert e["payload"] is None or len(json.dumps(e["payload"])) < 16_000
        assert "\x00" not in e["content"]


def test_sequence_of_types(main):
    assert [(e["type"], e["tool"]) for e in main.events] == [
        ("message", None),  # prompt with a screenshot
        ("note", None),  # thinking
        ("message", None),
        ("test_run", "Bash"),
        ("error", "Bash"),
        ("tool_call", "Read"),
        ("decision", None),
        ("file_edit", "Edit"),
        ("test_run", "Bash"),
        ("message", None),
        ("commit", "Bash"),
        ("tool_call", "Task"),
        ("file_edit", "Write"),
        ("tool_call", "Bash"),  # rejected rm -rf
        ("note", None),  # [Request interrupted by user for tool use]
        ("message", None),  # /cost
        ("note", None),  # its output
        ("note", None),  # compact boundary
        ("note", None),  # compaction summary
        ("message", None),
        ("tool_call", "Grep"),
        ("message", None),  # typed while the model worked: a queued_command attachment
        ("tool_call", "mcp__github__create_issue"),
        ("tool_call", "TodoWrite"),
    ]


def test_title_and_skipped_lines(main):
    assert main.title == "Fix checkout crash on empty cart"  # the summary line wins over ai-title
    assert main.skipped == 1 and main.unknown_types == {"future-record-kind": 1}


def test_prompt_with_image_and_no_base64(main):
    prompt = main.events[0]
    assert prompt["content"].startswith("Checkout crashes with ZeroDivisionError")
    assert prompt["content"].endswith("[image]") and "iVBOR" not in prompt["content"]
    assert prompt["payload"] == {"role": "user", "images": 1}


def test_thinking_is_a_note_without_its_signature(main):
    note = main.events[1]
    assert note["payload"]["thinking"] is True
    assert "reproduce it with the existing tests" in note["content"]
    assert "EosOCk" not in json.dumps(note)


def test_tokens_counted_once_per_message_id(main):
    usage_by_message = {}
    for obj in lines_of(MAIN):
        if obj.get("type") == "assistant":
            u = obj["message"]["usage"]
            usage_by_message[obj["message"]["id"]] = (
                u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"] + u["output_tokens"]
            )
    assert sum(e["tokens"] or 0 for e in main.events) == sum(usage_by_message.values())
    # several lines of msg_01FPWX... carry the same usage; only the first event (thinking) has it
    assert main.events[1]["tokens"] == 3 + 3257 + 15289 + 412
    assert main.events[2]["tokens"] is None and main.events[3]["tokens"] is None


def test_tool_call_and_result_are_one_event_with_the_tool_use_lines_uuid(main):
    tool_use_lines = {
        b["id"]: obj["uuid"]
        for obj in lines_of(MAIN)
        if obj.get("type") == "assistant"
        for b in obj["message"]["content"]
        if b.get("type") == "tool_use"
    }
    tool_events = [e for e in main.events if e["tool"] and e["type"] != "error"]
    assert len(tool_events) == len(tool_use_lines)
    for e in tool_events:
        assert e["id"] == tool_use_lines[e["payload"]["tool_use_id"]]


def test_failed_test_run_and_its_error(main):
    run, err = main.events[3], main.events[4]
    assert run["content"].startswith("$ python -m pytest tests/test_checkout.py -q\n...F")
    assert run["payload"]["status"] == "failed" and run["payload"]["exit_code"] == 1
    assert run["payload"]["counts"] == {"passed": 3, "failed": 1, "errors": 0, "skipped": 0}
    assert run["payload"]["failing_tests"] == ["tests/test_checkout.py::test_empty_cart"]
    assert run["files"] == ["tests/test_checkout.py"]
    assert err["id"] == run["id"] + ":error"
    assert err["content"].startswith("E       ZeroDivisionError: division by zero\n")
    assert "While running: python -m pytest tests/test_checkout.py -q" in err["content"]
    assert set(err["files"]) == {"tests/test_checkout.py", "shop/checkout.py"}


def test_passing_test_run(main):
    run = main.events[8]
    assert run["payload"]["status"] == "passed" and run["payload"]["exit_code"] == 0
    assert run["payload"]["counts"]["passed"] == 4 and run["payload"]["failed"] == 0


def test_read_is_compact_and_has_its_file(main):
    read = main.events[5]
    assert read["files"] == ["shop/checkout.py"]
    assert read["content"].startswith('Read shop/checkout.py\n"""Checkout totals."""')
    assert "system-reminder" not in read["content"] and "→" not in read["content"]


def test_decision_and_edit(main):
    assert main.events[6]["content"].startswith("Decision: treat an empty cart")
    edit = main.events[7]
    assert edit["files"] == ["shop/checkout.py"]
    assert edit["content"].splitlines()[:4] == [
        "Edit shop/checkout.py",
        "--- a/shop/checkout.py",
        "+++ b/shop/checkout.py",
        "@@ -8,4 +8,6 @@ def checkout_total(cart):",
    ]
    assert "+    if not cart.items:" in edit["content"]


def test_commit(main):
    commit = main.events[10]
    assert commit["payload"]["commit"] == "6322cf4" and commit["payload"]["branch"] == "main"
    assert commit["payload"]["message"] == "Fix ZeroDivisionError in checkout total for empty carts"


def test_task_write_rejection_and_others(main):
    task, write, rejected = main.events[11], main.events[12], main.events[13]
    assert task["content"].startswith("Task (Explore): Find other divisions by item count")
    assert "shop/reports.py:31" in task["content"] and task["payload"]["agent_id"] == "a1b2c3d"
    assert write["files"] == ["docs/empty-cart.md"]
    assert write["content"].startswith("Write docs/empty-cart.md\n(4 lines)\n# Empty carts")
    assert rejected["payload"]["rejected"] is True
    assert not any(e["id"] == rejected["id"] + ":error" for e in main.events)
    assert main.events[14]["payload"] == {"interrupted": True}
    assert main.events[15]["content"] == "/cost" and main.events[15]["payload"]["slash_command"] == "/cost"
    assert main.events[16]["content"].startswith("Total cost: $0.42")
    assert main.events[17]["payload"]["compact_boundary"] is True and main.events[17]["payload"]["pre_tokens"] == 48211
    assert main.events[18]["payload"] == {"compact_summary": True}
    grep, queued, mcp, todo = main.events[20:24]
    assert queued["content"] == "and keep the old CSV export working"
    assert queued["payload"] == {"role": "user", "queued": True}
    assert grep["files"] == ["shop/reports.py"] and grep["content"].startswith("Grep per_item in shop/reports.py")
    assert mcp["payload"]["mcp_server"] == "github" and mcp["payload"]["mcp_tool"] == "create_issue"
    assert "issues/412" in mcp["content"]
    assert todo["content"] == "Todos:\n[x] Fix empty cart in checkout_total\n[~] Fix per_item in reports"
    assert not any("Caveat" in e["content"] for e in main.events)  # isMeta lines are skipped


# -- subagents -------------------------------------------------------------------------------------------


def test_subagent_files_join_the_parent_session(main):
    assert subagent_files(MAIN) == [SUB]
    assert find_sessions(DATA) == [(MAIN, [SUB])]
    sub = read_claude_code(SUB, state={"cwd": main.cwd, "project": main.project_id})
    assert [e["type"] for e in sub.events] == ["message", "tool_call", "message"]
    for e in sub.events:
        assert e["session_id"] == SID and e["project_id"] == "shop-api"
        assert e["payload"]["sidechain"] is True and e["payload"]["agent_id"] == "a1b2c3d"
    assert sub.events[1]["files"] == ["shop"] and "shop/reports.py:31" in sub.events[1]["content"]
    alone = read_claude_code(SUB)  # without the parent's state the lines still name the session and cwd
    assert alone.session_id == SID and alone.project_id == "shop-api"


# -- building transcripts ------------------------------------------------------------------------------------

CWD = "/home/dev/src/app"


class T:
    """A small transcript writer using the field layout of Claude Code 2.1 lines."""

    def __init__(self, sid="s-1"):
        self.sid = sid
        self.n = 0
        self.lines: list[dict] = []

    def _base(self, kind, **extra):
        self.n += 1
        d = {
            "parentUuid": None,
            "isSidechain": False,
            "userType": "external",
            "cwd": CWD,
            "sessionId": self.sid,
            "version": "2.1.14",
            "gitBranch": "main",
            "type": kind,
            "uuid": f"u-{self.n:04d}",
            "timestamp": f"2026-01-21T06:{self.n // 60:02d}:{self.n % 60:02d}.000Z",
        }
        d.update(extra)
        self.lines.append(d)
        return d

    def prompt(self, text, **extra):
        return self._base("user", message={"role": "user", "content": text}, **extra)

    def assistant(self, mid, block, usage=None, **extra):
        msg = {
            "model": "claude-opus-4-5-20251101",
            "id": mid,
            "type": "message",
            "role": "assistant",
            "content": [block],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage or {"input_tokens": 1, "output_tokens": 10},
        }
        return self._base("assistant", message=msg, requestId="req_" + mid, **extra)

    def text(self, mid, text, **extra):
        return self.assistant(mid, {"type": "text", "text": text}, **extra)

    def bash(self, mid, tool_id, command, **extra):
        return self.assistant(
            mid,
            {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": command, "description": "run"}},
            **extra,
        )

    def result(self, tool_id, content, *, is_error=False, tur=None, **extra):
        block = {"tool_use_id": tool_id, "type": "tool_result", "content": content, "is_error": is_error}
        return self._base(
            "user",
            message={"role": "user", "content": [block]},
            toolUseResult=tur
            if tur is not None
            else {"stdout": content, "stderr": "", "interrupted": False, "isImage": False},
            **extra,
        )

    def text_lines(self):
        return [json.dumps(x, separators=(",", ":")) + "\n" for x in self.lines]

    def write(self, path):
        Path(path).write_text("".join(self.text_lines()))
        return Path(path)


def test_string_is_error_without_exit_code_prefix(tmp_path):
    """The dev sample's shape: is_error true, raw output, no 'Exit code N' line."""
    t = T()
    t.prompt("fix it")
    t.bash("m1", "t1", "python repro.py")
    t.result("t1", 'Traceback (most recent call last):\n  File "repro.py", line 1\nValueError: bad', is_error=True)
    r = read_claude_code(t.write(tmp_path / "s-1.jsonl"))
    call, err = r.events[1], r.events[2]
    assert call["type"] == "tool_call" and call["payload"]["is_error"] is True and "exit_code" not in call["payload"]
    assert err["content"].startswith("ValueError: bad\nWhile running: python repro.py")
    assert err["files"] == ["repro.py"]


def test_duplicate_block_lines_of_one_message_give_one_event(tmp_path):
    t = T()
    t.text("m1", "Same text")
    t.text("m1", "Same text")  # written again for the same message id
    t.text("m1", "Different text")
    r = read_claude_code(t.write(tmp_path / "s.jsonl"))
    assert [e["content"] for e in r.events] == ["Same text", "Different text"]
    assert r.events[0]["tokens"] == 11 and r.events[1]["tokens"] is None


def test_several_blocks_in_one_line_get_indexed_ids(tmp_path):
    t = T()
    line = t.text("m1", "first")
    line["message"]["content"].append({"type": "text", "text": "second"})
    r = read_claude_code(t.write(tmp_path / "s.jsonl"))
    assert [e["id"] for e in r.events] == ["u-0001:0", "u-0001:1"]


def test_malformed_lines_are_reported_and_the_rest_is_read(tmp_path):
    t = T()
    t.prompt("first")
    good = t.text_lines()
    bad = [
        "{not json\n",
        "[1, 2]\n",
        json.dumps({"type": "assistant", "message": "oops"}) + "\n",
        json.dumps({"type": "user", "message": {"role": "user", "content": 42}}) + "\n",
        json.dumps({"type": "assistant", "message": {"id": "m", "content": [7]}}) + "\n",
        json.dumps({"no": "type"}) + "\n",
        "\n",
    ]
    t2 = T()
    t2.n = 1
    t2.prompt("second")
    path = tmp_path / "s-1.jsonl"
    path.write_text("".join(good + bad + t2.text_lines()))
    r = read_claude_code(path)
    assert [e["content"] for e in r.events] == ["first", "second"]
    assert r.skipped == 6
    assert [p.split(": ", 1)[0] for p in r.problems] == [f"{path}:{n}" for n in range(2, 8)]
    assert "invalid JSON" in r.problems[0] and "not a JSON object" in r.problems[1]
    assert "without a 'message' object" in r.problems[2]


def test_a_180k_output_is_cut_head_and_tail(tmp_path):
    out = "HEAD-LINE\n" + "".join(f"line {i:06d} of noisy output\n" for i in range(7000)) + "TAIL: 3 failed"
    assert len(out) > 180_000
    t = T()
    t.bash("m1", "t1", "make build")
    t.result("t1", out)
    path = t.write(tmp_path / "s.jsonl")
    ev = read_claude_code(path).events[0]
    assert len(ev["content"]) <= 100_000
    assert ev["content"].startswith("$ make build\nHEAD-LINE\n") and ev["content"].endswith("TAIL: 3 failed")
    assert re.search(r"\n\[… [\d,]+ characters cut …\]\n", ev["content"])
    small = read_claude_code(path, max_content_chars=5000).events[0]
    assert len(small["content"]) <= 5000 and small["content"].endswith("TAIL: 3 failed")


def test_nul_and_control_characters_are_cleaned(tmp_path):
    t = T(sid="s\x01-2")
    t.bash("m1", "t1", "cat bin")
    t.result("t1", "a\x00b")
    r = read_claude_code(t.write(tmp_path / "s.jsonl"))
    assert r.events[0]["content"] == "$ cat bin\nab"
    assert r.events[0]["session_id"] == "s-2"


# -- held tool calls and incremental reads ------------------------------------------------------------------


def test_a_call_without_its_result_is_held_then_emitted_once(tmp_path):
    t = T()
    t.prompt("run tests")
    t.text("m1", "Running them.")
    t.bash("m1", "t1", "pytest -q")
    first = t.text_lines()
    t.result("t1", "3 passed in 0.1s")
    t.text("m2", "All green.")
    rest = t.text_lines()[len(first) :]
    path = tmp_path / "s-1.jsonl"
    path.write_text("".join(first))
    r1 = read_claude_code(path)
    assert [e["content"] for e in r1.events] == ["run tests", "Running them."]
    assert r1.held == 1 and r1.offset == len("".join(first[:2]).encode())
    with path.open("a") as fh:
        fh.write("".join(rest))
    r2 = read_claude_code(path, offset=r1.offset, state=r1.state)
    assert [e["type"] for e in r2.events] == ["test_run", "message"]
    assert r2.events[0]["id"] == "u-0003" and r2.events[0]["payload"]["status"] == "passed"
    assert r2.held == 0 and r2.offset == path.stat().st_size


def test_final_read_gives_up_on_calls_without_result(tmp_path):
    t = T()
    t.bash("m1", "t1", "sleep 1000")
    r = read_claude_code(t.write(tmp_path / "s.jsonl"), final=True)
    assert r.held == 0 and len(r.events) == 1
    assert r.events[0]["payload"]["result"] == "missing" and "exit_code" not in r.events[0]["payload"]


def test_a_new_response_gives_up_on_the_previous_messages_calls(tmp_path):
    t = T()
    t.bash("m1", "t1", "echo lost")
    t.text("m2", "Next response.")
    r = read_claude_code(t.write(tmp_path / "s.jsonl"))
    assert r.held == 0 and [e["type"] for e in r.events] == ["tool_call", "message"]
    assert r.events[0]["payload"]["result"] == "missing"


def test_sidechain_lines_do_not_release_the_parents_task(tmp_path):
    t = T()
    t.assistant(
        "m1",
        {
            "type": "tool_use",
            "id": "task1",
            "name": "Task",
            "input": {"description": "look", "prompt": "look around", "subagent_type": "Explore"},
        },
    )
    t.text("side-m1", "subagent working", isSidechain=True, agentId="ab12")
    t.text("side-m2", "subagent done", isSidechain=True, agentId="ab12")
    t.result("task1", [{"type": "text", "text": "found it"}], tur={"status": "completed", "agentId": "ab12"})
    r = read_claude_code(t.write(tmp_path / "s.jsonl"))
    task = [e for e in r.events if e["tool"] == "Task"][0]
    assert "found it" in task["content"] and "result" not in task["payload"]


def _split_points(data: bytes):
    points = [i + 1 for i, b in enumerate(data) if b == 0x0A][:-1]
    mids = [len(data) // 2, len(data) // 3, 2 * len(data) // 3, 1, len(data) - 1]
    return sorted(set(points + mids))


@pytest.mark.parametrize("path", [MAIN, SUB], ids=["session", "subagent"])
def test_two_reads_of_a_growing_file_give_each_event_exactly_once(tmp_path, path):
    data = path.read_bytes()
    full = read_claude_code(path).events
    work = tmp_path / path.name
    for cut in _split_points(data):
        work.write_bytes(data[:cut])
        r1 = read_claude_code(work)
        with work.open("ab") as fh:
            fh.write(data[cut:])
        r2 = read_claude_code(work, offset=r1.offset, state=r1.state)
        assert r1.events + r2.events == full, f"split at byte {cut}"
        assert r2.offset == len(data)


def test_three_reads_with_json_round_tripped_state(tmp_path):
    data = MAIN.read_bytes()
    full = read_claude_code(MAIN).events
    work = tmp_path / MAIN.name
    a, b = len(data) // 4, 3 * len(data) // 5
    work.write_bytes(data[:a])
    r1 = read_claude_code(work)
    with work.open("ab") as fh:
        fh.write(data[a:b])
    r2 = read_claude_code(work, offset=r1.offset, state=json.loads(json.dumps(r1.state)))
    with work.open("ab") as fh:
        fh.write(data[b:])
    r3 = read_claude_code(work, offset=r2.offset, state=json.loads(json.dumps(r2.state)))
    assert r1.events + r2.events + r3.events == full


def _tool(t: T, mid: str, tool_id: str, name: str, inp: dict):
    return t.assistant(mid, {"type": "tool_use", "id": tool_id, "name": name, "input": inp})


@pytest.mark.parametrize(
    "name, inp, result, tur, is_error, type_, head, files",
    [
        (
            "MultiEdit",
            {
                "file_path": f"{CWD}/src/a.py",
                "edits": [
                    {"old_string": "x = 1", "new_string": "x = 2"},
                    {"old_string": "y = 1", "new_string": "y = 3"},
                ],
            },
            "Applied 2 edits",
            {},
            False,
            "file_edit",
            "MultiEdit src/a.py (2 edits)",
            ["src/a.py"],
        ),
        (
            "NotebookEdit",
            {
                "notebook_path": f"{CWD}/nb/eda.ipynb",
                "cell_id": "c3",
                "new_source": "df.describe()",
                "edit_mode": "replace",
            },
            "Updated cell c3",
            {},
            False,
            "file_edit",
            "NotebookEdit nb/eda.ipynb cell c3 (replace)",
            ["nb/eda.ipynb"],
        ),
        (
            "Write",
            {"file_path": f"{CWD}/README.md", "content": "# App\nnew\n"},
            "updated",
            {
                "type": "update",
                "filePath": f"{CWD}/README.md",
                "originalFile": "# App\nold\n",
                "structuredPatch": [
                    {"oldStart": 1, "oldLines": 2, "newStart": 1, "newLines": 2, "lines": [" # App", "-old", "+new"]}
                ],
            },
            False,
            "file_edit",
            "Write README.md",
            ["README.md"],
        ),
        (
            "Edit",
            {"file_path": f"{CWD}/src/a.py", "old_string": "nope", "new_string": "x"},
            "<tool_use_error>String to replace not found in file.\nString: nope</tool_use_error>",
            "Error: String to replace not found in file.",
            True,
            "tool_call",
            "Edit src/a.py (failed)",
            ["src/a.py"],
        ),
        (
            "ExitPlanMode",
            {"plan": "1. Add a cache\n2. Invalidate on write"},
            "User has approved your plan.",
            {},
            False,
            "decision",
            "Plan approved:",
            [],
        ),
        (
            "WebFetch",
            {"url": "https://docs.python.org/3/library/difflib.html", "prompt": "unified_diff signature"},
            "unified_diff(a, b, fromfile='', tofile='', n=3, lineterm='\\n')",
            {"durationMs": 812},
            False,
            "tool_call",
            "WebFetch https://docs.python.org/3/library/difflib.html",
            [],
        ),
        ("LS", {"path": f"{CWD}/src"}, "- src/\n  - a.py", {}, False, "tool_call", "LS in src", ["src"]),
    ],
)
def test_other_tools(tmp_path, name, inp, result, tur, is_error, type_, head, files):
    t = T()
    _tool(t, "m1", "t1", name, inp)
    t.result("t1", result, is_error=is_error, tur=tur)
    ev = read_claude_code(t.write(tmp_path / "s.jsonl")).events
    assert len(ev) == 1
    assert ev[0]["type"] == type_ and ev[0]["tool"] == name
    assert ev[0]["content"].startswith(head) and ev[0]["files"] == files
    if name == "Write":
        assert "@@ -1,2 +1,2 @@" in ev[0]["content"] and "+new" in ev[0]["content"]
    if name == "MultiEdit":
        assert "-x = 1\n+x = 2" in ev[0]["content"] and "-y = 1\n+y = 3" in ev[0]["content"]
