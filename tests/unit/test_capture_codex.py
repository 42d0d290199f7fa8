"""Codex rollouts -> events, on fixtures shaped like real Codex CLI rollout files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ctxsearch.capture.codex import find_rollouts, parse_output, peek_identity, read_codex

DATA = Path(__file__).resolve().parents[1] / "data" / "capture" / "codex"
SID = "019a9f3c-5b6e-7c10-9d2a-4e8f6a1b2c3d"
ROLLOUT = DATA / "sessions" / "2025" / "11" / "20" / f"rollout-2025-11-20T09-15-02-{SID}.jsonl"
LEGACY_SID = "5973b6c0-94b8-487b-a530-2aeb6098ae0e"
LEGACY = DATA / "sessions" / f"rollout-2025-05-07T17-24-21-{LEGACY_SID}.jsonl"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@pytest.fixture(scope="module")
def rollout():
    return read_codex(ROLLOUT)


def test_discovery_and_identity():
    assert find_rollouts(DATA) == [LEGACY, ROLLOUT]
    assert find_rollouts(DATA / "sessions") == [LEGACY, ROLLOUT]
    assert peek_identity(ROLLOUT) == (SID, "/home/dana/src/Billing")
    assert peek_identity(LEGACY) == (LEGACY_SID, "/home/dana/src/legacy-app")


def test_events_are_valid(rollout):
    assert rollout.problems == [] and rollout.held == 0
    assert rollout.session_id == SID and rollout.project_id == "billing"
    assert rollout.skipped == 1 and rollout.unknown_types == {"future_record": 1}
    ids = [e["id"] for e in rollout.events]
    assert len(ids) == len(set(ids))
    for e in rollout.events:
        assert e["project_id"] == "billing" and e["session_id"] == SID
        assert RFC3339.match(e["timestamp"]) and not re.search(r"[\x00-\x1f]", e["id"])
        assert e["id"].startswith(SID + ":")


def test_sequence_and_dedup(rollout):
    assert [(e["type"], e["tool"]) for e in rollout.events] == [
        ("message", None),  # the prompt, once (response_item + event_msg user_message)
        ("note", None),  # reasoning summary, once (reasoning item + agent_reasoning)
        ("tool_call", "shell"),
        ("test_run", "exec_command"),
        ("error", "exec_command"),
        ("decision", None),  # "I'll use a set ... instead of ...", once
        ("file_edit", "apply_patch"),
        ("test_run", "exec_command"),
        ("commit", "local_shell"),
        ("tool_call", "exec_command"),  # npm test still running
        ("test_run", "write_stdin"),  # ... its result
        ("tool_call", "update_plan"),
        ("message", None),
        ("note", None),  # compacted
        ("note", None),  # turn aborted
    ]
    texts = [e["content"] for e in rollout.events]
    assert not any("environment_context" in t or "AGENTS.md" in t or "permissions instructions" in t for t in texts)


def test_ids_are_offsets_or_call_ids(rollout):
    data = ROLLOUT.read_bytes()
    prompt = rollout.events[0]
    offset = int(prompt["id"].rsplit(":", 1)[1])
    line = data[offset : data.index(b"\n", offset)]
    assert json.loads(line)["payload"]["type"] == "message"
    assert rollout.events[2]["id"] == f"{SID}:call_Qm3Zk8s1VfJr2xTn5pLw7cYd"
    assert rollout.events[4]["id"] == f"{SID}:call_Bv7Hq2Lm9Xc4Nz1Rt6Ys8Wk0:error"


def test_shell_outputs_in_their_three_formats(rollout):
    shell, run, err = rollout.events[2], rollout.events[3], rollout.events[4]
    assert shell["content"].startswith('$ rg -n "apply_discount" billing tests\nbilling/invoice.py:42:')
    assert shell["payload"]["exit_code"] == 0  # JSON {"output", "metadata": {"exit_code"}}
    assert run["payload"]["exit_code"] == 1 and run["payload"]["status"] == "failed"  # "Process exited with code 1"
    assert run["payload"]["failing_tests"] == ["tests/test_invoice.py::test_discount_applied_once"]
    assert "Chunk ID" not in run["content"] and run["files"] == ["tests/test_invoice.py"]
    assert err["content"].startswith("E       AssertionError: assert 81.0 == 90.0")
    passed = rollout.events[7]
    assert passed["payload"]["exit_code"] == 0 and passed["payload"]["counts"]["passed"] == 7  # "Exit code: 0"


def test_apply_patch_is_a_file_edit(rollout):
    edit = rollout.events[6]
    assert edit["files"] == ["billing/invoice.py", "tests/test_codes.py"]
    assert edit["content"].startswith("apply_patch billing/invoice.py, tests/test_codes.py\n*** Begin Patch")
    assert "+    if code in invoice.applied_codes:" in edit["content"]
    assert edit["payload"]["patch"] == {"update": 1, "add": 1}


def test_commit_long_running_process_and_plan(rollout):
    commit = rollout.events[8]
    assert commit["payload"]["commit"] == "9f8e7d6"
    assert commit["content"].startswith("$ git commit -am 'Apply discount codes once per invoice'")
    started, finished = rollout.events[9], rollout.events[10]
    assert started["payload"]["running"] is True and started["payload"]["process"] == "3"
    assert finished["content"].startswith("$ npm test\n[continued]\nPASS src/total.test.js")
    assert finished["payload"]["status"] == "passed" and finished["payload"]["counts"]["passed"] == 12
    assert finished["payload"]["continues"] == started["id"]
    assert rollout.events[11]["content"].startswith("Plan:\nFix landed; web tests green.\n[x] Reproduce")


def test_reasoning_and_tokens(rollout):
    note = rollout.events[1]
    assert note["content"] == "**Inspecting invoice totals**" and note["payload"]["thinking"] is True
    assert "gAAAA" not in json.dumps(rollout.events)
    assert sum(e["tokens"] or 0 for e in rollout.events) == 14290  # the last total_token_usage, counted once


def test_legacy_rollout_without_wrapper():
    r = read_codex(LEGACY)
    assert r.problems == [] and r.session_id == LEGACY_SID and r.project_id == "legacy-app"
    assert [e["type"] for e in r.events] == ["message", "note", "tool_call", "error", "message"]
    err = r.events[3]
    assert err["content"].startswith("django.core.exceptions.ImproperlyConfigured: Set the DATABASE_URL")
    assert set(err["files"]) == {"manage.py", "app/settings.py"}
    assert all(RFC3339.match(e["timestamp"]) for e in r.events)


@pytest.mark.parametrize(
    "output, expected",
    [
        ('{"output":"hi\\n","metadata":{"exit_code":0,"duration_seconds":0.01}}', ("hi\n", 0, None)),
        ("Exit code: 2\nWall time: 0.1 seconds\nOutput:\nboom", ("boom", 2, None)),
        (
            "Chunk ID: 1\nWall time: 0.5 seconds\nProcess exited with code 0\nOriginal token count: 3\nOutput:\nok",
            ("ok", 0, None),
        ),
        (
            "Chunk ID: 7\nWall time: 10.0 seconds\nProcess running with session ID 9\nOutput:\npartial",
            ("partial", None, "9"),
        ),
        ("Script running with cell ID c-1", ("", None, "c-1")),
        ([{"type": "input_text", "text": '{"output":"2 passed\\n","exit_code":0}'}], ("2 passed\n", 0, None)),
        ({"content": "failed", "success": False}, ("failed", 1, None)),
        ("./alpha.txt\n./beta.txt", ("./alpha.txt\n./beta.txt", None, None)),
        ('{"not": "a result"}', ('{"not": "a result"}', None, None)),
        (None, ("", None, None)),
    ],
)
def test_parse_output(output, expected):
    assert parse_output(output) == expected


def _line(kind, payload, t="2025-11-20T10:00:00.000Z"):
    return json.dumps({"timestamp": t, "type": kind, "payload": payload}) + "\n"


def test_malformed_lines(tmp_path):
    path = tmp_path / f"rollout-x-{SID}.jsonl"
    path.write_text(
        _line("session_meta", {"id": SID, "cwd": "/w/app"})
        + "garbage\n"
        + json.dumps({"timestamp": "t", "type": "response_item", "payload": "x"})
        + "\n"
        + _line("response_item", {"type": "message", "role": "user", "content": 5})
        + _line(
            "response_item",
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "still read"}]},
        )
    )
    r = read_codex(path)
    assert [e["content"] for e in r.events] == ["still read"]
    assert [p.split(": ", 1)[0] for p in r.problems] == [f"{path}:{n}" for n in (2, 3, 4)]
    assert r.skipped == 3


def test_an_output_that_has_not_arrived_is_held(tmp_path):
    path = tmp_path / f"rollout-x-{SID}.jsonl"
    head = _line("session_meta", {"id": SID, "cwd": "/w/app"}) + _line(
        "response_item",
        {
            "type": "function_call",
            "name": "shell",
            "call_id": "c1",
            "arguments": json.dumps({"command": ["bash", "-lc", "pytest"]}),
        },
    )
    path.write_text(head)
    r1 = read_codex(path)
    assert r1.events == [] and r1.held == 1
    assert r1.offset == len(_line("session_meta", {"id": SID, "cwd": "/w/app"}).encode())
    with path.open("a") as fh:
        fh.write(
            _line(
                "response_item",
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": "Exit code: 0\nWall time: 1 seconds\nOutput:\n3 passed in 0.2s",
                },
            )
        )
    r2 = read_codex(path, offset=r1.offset, state=r1.state)
    assert [e["type"] for e in r2.events] == ["test_run"] and r2.events[0]["id"] == f"{SID}:c1"
    assert r2.events[0]["project_id"] == "app"
    final = read_codex(path, final=True)
    assert final.held == 0


@pytest.mark.parametrize("path", [ROLLOUT, LEGACY], ids=["current", "legacy"])
def test_two_reads_of_a_growing_rollout_give_each_event_exactly_once(tmp_path, path):
    data = path.read_bytes()
    full = read_codex(path).events

    def strip(events):  # token counts may land on a neighbouring event when a read ends between them
        return [{k: v for k, v in e.items() if k != "tokens"} for e in events]

    work = tmp_path / path.name
    cuts = sorted({i + 1 for i, b in enumerate(data) if b == 0x0A} | {len(data) // 2, len(data) // 3})
    for cut in cuts:
        work.write_bytes(data[:cut])
        r1 = read_codex(work)
        with work.open("ab") as fh:
            fh.write(data[cut:])
        r2 = read_codex(work, offset=r1.offset, state=json.loads(json.dumps(r1.state)))
        assert strip(r1.events + r2.events) == strip(full), f"split at byte {cut}"
