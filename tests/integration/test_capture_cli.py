"""`ctxsearch import`, `hook`, `install` and `forget` as a user runs them, against the real
server (over HTTP) and the real store."""

from __future__ import annotations

import json
import secrets
import shutil
import string
import time
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from ctxsearch.cli.main import main

DATA = Path(__file__).resolve().parents[1] / "data" / "capture"
SESSION = "7d1c0f7e-3b0a-4a53-9d5e-2f4c1b8e6a10"


def _openai_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "sk-proj-" + "".join(secrets.choice(alphabet) for _ in range(48))


def _github_token() -> str:
    return "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))


def _line(cwd: str, session: str, kind: str, message: dict, ts: str, parent: str | None = None, **extra) -> dict:
    return {
        "parentUuid": parent,
        "isSidechain": False,
        "userType": "external",
        "cwd": cwd,
        "sessionId": session,
        "version": "2.1.14",
        "gitBranch": "main",
        "type": kind,
        "uuid": str(uuid.uuid4()),
        "timestamp": ts,
        "message": message,
        **extra,
    }


def _bash_turn(cwd: str, session: str, command: str, output: str, ts: str, *, is_error: bool = False) -> list[dict]:
    tool_id = "toolu_" + secrets.token_hex(12)
    call = _line(
        cwd,
        session,
        "assistant",
        {
            "model": "claude-opus-4-5-20251101",
            "id": "msg_" + secrets.token_hex(12),
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": command, "description": "run"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 3, "output_tokens": 20},
        },
        ts,
    )
    result = _line(
        cwd,
        session,
        "user",
        {
            "role": "user",
            "content": [{"tool_use_id": tool_id, "type": "tool_result", "content": output, "is_error": is_error}],
        },
        ts,
        parent=call["uuid"],
        toolUseResult={"stdout": output, "stderr": "", "interrupted": False, "isImage": False},
    )
    return [call, result]


def _write(path: Path, lines: list[dict], *, mode: str = "w") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode) as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")


@pytest.fixture
def projects(tmp_path) -> Path:
    """The fixture transcripts, under a project folder of this test's own (a unique cwd basename)."""
    root = tmp_path / "projects"
    shutil.copytree(DATA / "claude-code" / "projects", root)
    return root


def _cli(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def _search(url: str, project: str, query: str, **extra) -> list[dict]:
    r = httpx.post(f"{url}/v1/search", json={"query": query, "project_id": project, "limit": 20, **extra}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def _wait(url: str, project: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{url}/v1/projects/{project}/stats", timeout=30).json()["pending"]:
        assert time.monotonic() < deadline, "still pending"
        time.sleep(0.2)


def test_import_claude_code_over_http_is_findable_idempotent_and_redacted(live_url, tmp_path, projects):
    cwd = f"/home/dev/src/Billing_Svc-{uuid.uuid4().hex[:6]}"
    project = cwd.rsplit("/", 1)[1].lower()  # [a-z0-9._-] are kept
    session = str(uuid.uuid4())
    key, token = _openai_key(), _github_token()
    prompt = _line(
        cwd,
        session,
        "user",
        {"role": "user", "content": "Deploy fails: InvoiceNumberCollision"},
        "2026-02-01T10:00:00.000Z",
    )
    lines = [
        prompt,
        *_bash_turn(
            cwd, session, "cat .env", f"OPENAI_API_KEY={key}\nGITHUB_TOKEN={token}\n", "2026-02-01T10:00:05.000Z"
        ),
        *_bash_turn(
            cwd,
            session,
            "python -m pytest tests/test_invoices.py -q",
            "FAILED tests/test_invoices.py::test_numbering - InvoiceNumberCollision: INV-2041 exists\n"
            "1 failed, 12 passed in 0.31s",
            "2026-02-01T10:00:09.000Z",
            is_error=True,
        ),
    ]
    encoded = cwd.replace("/", "-")
    _write(projects / encoded / f"{session}.jsonl", lines)
    _write(projects / encoded / f"{session}.jsonl", [{"not json": True}], mode="a")
    with (projects / encoded / f"{session}.jsonl").open("a") as f:
        f.write("{this line is broken\n")

    state_home = tmp_path / "state"
    env = {"XDG_STATE_HOME": str(state_home)}
    r = CliRunner(env=env).invoke(
        main, ["import", "claude-code", str(projects), "--url", live_url, "--json"], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["accepted"] == report["events"] > 0
    assert report["redactions"] >= 2
    assert any(f"{session}.jsonl:" in p for p in report["problems"]), report["problems"]

    _wait(live_url, project)
    hits = _search(live_url, project, "InvoiceNumberCollision test_numbering")
    assert hits and hits[0]["session_id"] == session
    assert {h["project_id"] for h in hits} == {project}
    for query in (key, token, key[8:30]):
        for mode in ("text", "hybrid"):
            assert key not in json.dumps(_search(live_url, project, query, mode=mode))
            assert token not in json.dumps(_search(live_url, project, query, mode=mode))
    view = httpx.get(f"{live_url}/v1/sessions/{session}", params={"project_id": project}, timeout=30).json()
    assert key not in json.dumps(view) and token not in json.dumps(view)
    # The line survives, with the value replaced (the snippet highlights the words it matched).
    shown = json.dumps(_search(live_url, project, "OPENAI_API_KEY redacted", mode="text"))
    assert "OPENAI_API_KEY=[REDACTED:" in shown.replace("<b>", "").replace("</b>", "")

    # The fixture's own session lands under its cwd's basename, with its transcript's id.
    _wait(live_url, "shop-api")
    assert _search(live_url, "shop-api", "ZeroDivisionError empty cart")[0]["session_id"] == SESSION

    again = CliRunner(env=env).invoke(
        main, ["import", "claude-code", str(projects), "--url", live_url, "--json"], catch_exceptions=False
    )
    assert json.loads(again.stdout.strip().splitlines()[-1])["accepted"] == 0
    full = CliRunner(env=env).invoke(
        main, ["import", "claude-code", str(projects), "--url", live_url, "--json", "--full"], catch_exceptions=False
    )
    rereport = json.loads(full.stdout.strip().splitlines()[-1])
    assert rereport["events"] == report["events"] and rereport["accepted"] == 0  # ids are stable


def test_import_of_a_missing_path_fails_clearly(tmp_path):
    r = CliRunner().invoke(main, ["import", "claude-code", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_import_codex_over_http(live_url, tmp_path):
    root = tmp_path / "sessions"
    shutil.copytree(DATA / "codex" / "sessions", root)
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    r = CliRunner(env=env).invoke(
        main, ["import", "codex", str(root), "--url", live_url, "--json"], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["sessions"] == 2 and report["accepted"] > 0


def test_excluded_projects_and_ignore_files_are_not_captured(live_url, tmp_path, projects, monkeypatch):
    cwd = tmp_path / "repos" / f"secret-{uuid.uuid4().hex[:6]}"
    (cwd / "sub").mkdir(parents=True)
    session = str(uuid.uuid4())
    _write(
        projects / "ignored" / f"{session}.jsonl",
        [
            _line(
                str(cwd / "sub"),
                session,
                "user",
                {"role": "user", "content": "private work"},
                "2026-02-01T10:00:00.000Z",
            )
        ],
    )
    (cwd / ".ctxsearch-ignore").write_text("")
    monkeypatch.setenv("CTXSEARCH_EXCLUDE_PROJECTS", "shop-*")
    r = CliRunner(env={"XDG_STATE_HOME": str(tmp_path / "state")}).invoke(
        main, ["import", "claude-code", str(projects), "--url", live_url, "--json"], catch_exceptions=False
    )
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["events"] == 0 and report["excluded_projects"] == 2


def test_hook_imports_each_turn_and_injects_relevant_context(live_url, tmp_path):
    cwd = f"/home/dev/src/hookproj-{uuid.uuid4().hex[:6]}"
    project = cwd.rsplit("/", 1)[1]
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    transcript = tmp_path / "projects" / cwd.replace("/", "-") / f"{old}.jsonl"
    _write(
        transcript,
        [
            _line(
                cwd,
                old,
                "user",
                {"role": "user", "content": "Payment webhook rejects Stripe events"},
                "2026-02-01T10:00:00.000Z",
            ),
            *_bash_turn(
                cwd,
                old,
                "pytest tests/test_webhooks.py",
                "E   SignatureVerificationError: No signatures found matching the expected "
                "signature for payload\n1 failed in 0.2s",
                "2026-02-01T10:00:04.000Z",
                is_error=True,
            ),
        ],
    )
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def hook(payload: dict):
        return CliRunner(env=env).invoke(
            main, ["hook", "claude-code", "--url", live_url], input=json.dumps(payload), catch_exceptions=False
        )

    base = {"session_id": old, "transcript_path": str(transcript), "cwd": cwd}
    r = hook({**base, "hook_event_name": "PostToolUse", "tool_name": "Bash"})
    assert r.exit_code == 0 and r.stdout == ""
    _wait(live_url, project)
    assert _search(live_url, project, "SignatureVerificationError")[0]["session_id"] == old

    # Appended turns are imported on the next hook call, once.
    _write(
        transcript,
        _bash_turn(cwd, old, "git log -1", "commit 4f2a9c1 fix webhook secret rotation", "2026-02-01T10:00:09.000Z"),
        mode="a",
    )
    assert hook({**base, "hook_event_name": "Stop"}).exit_code == 0
    _wait(live_url, project)
    assert _search(live_url, project, "webhook secret rotation", mode="text")

    asked = hook(
        {
            "session_id": new,
            "transcript_path": str(tmp_path / "none.jsonl"),
            "cwd": cwd,
            "hook_event_name": "UserPromptSubmit",
            "prompt": "the stripe webhook signature verification fails again, what did we find last time?",
        }
    )
    assert asked.exit_code == 0
    out = json.loads(asked.stdout)["hookSpecificOutput"]
    assert out["hookEventName"] == "UserPromptSubmit"
    assert old in out["additionalContext"] and len(out["additionalContext"]) < 10_000

    unrelated = hook(
        {
            "session_id": new,
            "transcript_path": str(tmp_path / "none.jsonl"),
            "cwd": cwd,
            "hook_event_name": "UserPromptSubmit",
            "prompt": "write a haiku about autumn leaves",
        }
    )
    assert unrelated.exit_code == 0 and unrelated.stdout == ""

    started = hook(
        {
            "session_id": new,
            "transcript_path": str(tmp_path / "none.jsonl"),
            "cwd": cwd,
            "hook_event_name": "SessionStart",
            "source": "startup",
        }
    )
    assert started.exit_code == 0 and old in json.loads(started.stdout)["hookSpecificOutput"]["additionalContext"]


@pytest.mark.parametrize(
    "payload",
    ["not json", "[]", json.dumps({"hook_event_name": "PostToolUse", "transcript_path": "/nonexistent/x.jsonl"})],
)
def test_hook_never_fails_the_agent(payload, tmp_path):
    r = CliRunner(env={"XDG_STATE_HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}).invoke(
        main, ["hook", "claude-code", "--url", "http://127.0.0.1:9"], input=payload
    )
    assert r.exit_code == 0 and r.stdout == ""


def test_install_claude_code_merges_idempotently_with_a_backup(tmp_path):
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    theirs = {
        "model": "opus",
        "hooks": {"PostToolUse": [{"matcher": "Edit", "hooks": [{"type": "command", "command": "prettier --write"}]}]},
    }
    (home / ".claude" / "settings.json").write_text(json.dumps(theirs))
    (home / ".claude.json").write_text(json.dumps({"numStartups": 3, "mcpServers": {"other": {"command": "x"}}}))

    dry = _cli("install", "claude-code", "--home", str(home), "--dry-run")
    assert dry.exit_code == 0 and "hook claude-code" in dry.output
    assert json.loads((home / ".claude" / "settings.json").read_text()) == theirs  # nothing written

    first = _cli("install", "claude-code", "--home", str(home))
    assert first.exit_code == 0 and "backup" in first.output
    settings = json.loads((home / ".claude" / "settings.json").read_text())
    assert settings["model"] == "opus"
    post = settings["hooks"]["PostToolUse"]
    assert {"type": "command", "command": "prettier --write"} in post[0]["hooks"]
    ours = [h["command"] for g in post for h in g["hooks"] if "hook claude-code" in h["command"]]
    assert len(ours) == 1
    for event in ("Stop", "SubagentStop", "PreCompact", "SessionEnd", "SessionStart", "UserPromptSubmit"):
        assert any("hook claude-code" in h["command"] for g in settings["hooks"][event] for h in g["hooks"])
    config = json.loads((home / ".claude.json").read_text())
    assert config["numStartups"] == 3 and config["mcpServers"]["other"] == {"command": "x"}
    assert config["mcpServers"]["ctxsearch"]["args"] == ["mcp"]
    assert list((home / ".claude").glob("settings.json.bak-*"))

    second = _cli("install", "claude-code", "--home", str(home))
    assert second.exit_code == 0 and "nothing changed" in second.output
    assert json.loads((home / ".claude" / "settings.json").read_text()) == settings


def test_install_refuses_a_broken_settings_file(tmp_path):
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text("{broken")
    r = CliRunner().invoke(main, ["install", "claude-code", "--home", str(home)])
    assert r.exit_code == 2 and "not valid JSON" in r.output
    assert (home / ".claude" / "settings.json").read_text() == "{broken"


def test_install_codex_registers_the_mcp_server_once(tmp_path):
    import tomllib

    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text('model = "o4"  # mine\n\n[mcp_servers.other]\ncommand = "x"\n')
    assert _cli("install", "codex", "--home", str(home)).exit_code == 0
    text = (home / ".codex" / "config.toml").read_text()
    config = tomllib.loads(text)
    assert config["model"] == "o4" and "# mine" in text
    assert config["mcp_servers"]["other"] == {"command": "x"}
    assert config["mcp_servers"]["ctxsearch"]["args"] == ["mcp"]
    assert "nothing changed" in _cli("install", "codex", "--home", str(home)).output
    assert (home / ".codex" / "config.toml").read_text() == text


def test_forget_erases_a_session_through_the_server(live_url, tmp_path, projects):
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    cwd = f"/home/dev/src/forgetme-{uuid.uuid4().hex[:6]}"
    project = cwd.rsplit("/", 1)[1]
    keep, drop = str(uuid.uuid4()), str(uuid.uuid4())
    for session, word in ((keep, "LedgerReconcileTimeout"), (drop, "QuarantineBucketOverflow")):
        _write(
            projects / cwd.replace("/", "-") / f"{session}.jsonl",
            [
                _line(
                    cwd,
                    session,
                    "user",
                    {"role": "user", "content": f"investigate {word} in prod"},
                    "2026-02-01T10:00:00.000Z",
                )
            ],
        )
    assert CliRunner(env=env).invoke(main, ["import", "claude-code", str(projects), "--url", live_url]).exit_code == 0
    _wait(live_url, project)
    assert _search(live_url, project, "QuarantineBucketOverflow", mode="text")

    r = _cli("forget", "--project", project, "--session", drop, "--url", live_url, "--yes", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["events"] == 1
    for mode in ("text", "vector", "hybrid"):
        assert all(h["session_id"] != drop for h in _search(live_url, project, "QuarantineBucketOverflow", mode=mode))
    assert _search(live_url, project, "LedgerReconcileTimeout", mode="text")[0]["session_id"] == keep
    missing = CliRunner().invoke(main, ["forget", "--project", project, "--session", drop, "--url", live_url, "--yes"])
    assert missing.exit_code == 2 and "no session" in missing.output
