"""`ctxsearch bench-capture`: how fast agent history gets in.

Against a `ctxsearch serve` of its own (a scratch data dir, its worker off, so the figures
are reading and storing before embedding), it measures:

- the import rate of a Claude Code projects folder, copied `--copies` times under fresh
  session ids so the run is long enough to time (events/s, wall clock, both processes);
- the hook's latency for an incremental turn: one tool call appended to a transcript, then
  `ctxsearch hook claude-code` as Claude Code runs it (a new process each time), p50/p95;
- the hook's latency with context: `UserPromptSubmit` with a prompt, p50/p95.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ctxsearch.bench.runner import stop_process, wait_for_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_projects(src: Path, dst: Path, copies: int) -> int:
    """`copies` copies of every transcript under new session ids and line uuids; returns the line count."""
    lines = 0
    for n in range(copies):
        for path in sorted(src.rglob("*.jsonl")):
            rel = path.relative_to(src)
            sid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{rel}:{n}"))
            out = dst / rel.parent / f"{sid}.jsonl"
            out.parent.mkdir(parents=True, exist_ok=True)
            with path.open() as f, out.open("w") as g:
                for line in f:
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if "sessionId" in obj:
                        obj["sessionId"] = sid
                    for key in ("uuid", "parentUuid", "leafUuid"):
                        if obj.get(key):
                            obj[key] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{obj[key]}:{n}"))
                    g.write(json.dumps(obj) + "\n")
                    lines += 1
    return lines


def _turn(cwd: str, session: str, n: int) -> str:
    tool = f"toolu_bench{n:06d}"
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    common = {
        "isSidechain": False,
        "userType": "external",
        "cwd": cwd,
        "sessionId": session,
        "version": "2.1.14",
        "timestamp": ts,
    }
    call = {
        **common,
        "type": "assistant",
        "uuid": str(uuid.uuid4()),
        "message": {
            "id": f"msg_bench{n:06d}",
            "role": "assistant",
            "type": "message",
            "model": "claude",
            "content": [
                {
                    "type": "tool_use",
                    "id": tool,
                    "name": "Bash",
                    "input": {"command": f"pytest tests/test_step_{n}.py -q"},
                }
            ],
            "usage": {"input_tokens": 10, "output_tokens": 5},
        },
    }
    result = {
        **common,
        "type": "user",
        "uuid": str(uuid.uuid4()),
        "parentUuid": call["uuid"],
        "message": {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool, "content": f"{n} passed in 0.{n % 10}s"}],
        },
    }
    return json.dumps(call) + "\n" + json.dumps(result) + "\n"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_capture(projects: Path, *, copies: int = 5, hook_runs: int = 30, log=print) -> dict:
    work = Path(tempfile.mkdtemp(prefix="ctxsearch-bench-capture-"))
    data_dir = work / "data"
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CTXSEARCH_LOG_LEVEL": "WARNING", "XDG_STATE_HOME": str(work / "state")}
    for var in ("CTXSEARCH_DATABASE_URL", "CTXSEARCH_URL", "CTXSEARCH_API_KEY", "CTXSEARCH_DATA_DIR"):
        env.pop(var, None)
    cli = [sys.executable, "-m", "ctxsearch"]
    server_log = work / "serve.log"
    server = subprocess.Popen(
        [*cli, "serve", "--data-dir", str(data_dir), "--port", str(port), "--no-worker"],
        env=env,
        stdout=server_log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, server, lambda: server_log.read_text()[-3000:])
        copied = work / "projects"
        lines = _copy_projects(projects, copied, copies)
        log(f"importing {lines} transcript lines ({copies} copies of {projects})")
        t0 = time.perf_counter()
        out = subprocess.run(
            [*cli, "import", "claude-code", str(copied), "--data-dir", str(data_dir), "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=work,
        )
        seconds = time.perf_counter() - t0
        report = json.loads(out.stdout.strip().splitlines()[-1])
        result: dict = {
            "import_events": report["events"],
            "import_seconds": round(seconds, 3),
            "import_events_per_s": round(report["events"] / seconds, 1),
            "import_redactions": report["redactions"],
            "import_skipped_lines": report["skipped_lines"],
        }
        log(f"import: {result['import_events']} events in {seconds:.2f} s = {result['import_events_per_s']:,.0f}/s")

        cwd = "/home/dev/src/benchhook"
        session = str(uuid.uuid4())
        transcript = work / "hook" / "-home-dev-src-benchhook" / f"{session}.jsonl"
        transcript.parent.mkdir(parents=True)
        transcript.write_text("")
        base = {"session_id": session, "transcript_path": str(transcript), "cwd": cwd}

        def hook(payload: dict) -> float:
            """One hook call as Claude Code makes it: a new process, the JSON on stdin."""
            t = time.perf_counter()
            subprocess.run(
                [*cli, "hook", "claude-code", "--data-dir", str(data_dir)],
                input=json.dumps(payload),
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd=work,
            )
            return time.perf_counter() - t

        turns = []
        for n in range(hook_runs):
            with transcript.open("a") as f:
                f.write(_turn(cwd, session, n))
            turns.append(hook({**base, "hook_event_name": "PostToolUse", "tool_name": "Bash"}))
        stored = json.loads(
            subprocess.run(["curl", "-s", f"{url}/v1/projects/benchhook/stats"], capture_output=True, text=True).stdout
            or "{}"
        )
        from ctxsearch.capture.claude_code import peek_identity

        # The prompts ask the first imported project, found by its transcripts' working directory.
        _, first_cwd = peek_identity(next(iter(sorted(copied.rglob("*.jsonl")))))
        prompts = [
            hook(
                {
                    "session_id": str(uuid.uuid4()),
                    "transcript_path": str(transcript),
                    "cwd": first_cwd or cwd,
                    "hook_event_name": "UserPromptSubmit",
                    "prompt": f"the test for step {n} fails with an assertion error again",
                }
            )
            for n in range(hook_runs)
        ]
        result |= {
            "hook_turn_p50_ms": round(1000 * statistics.median(turns), 1),
            "hook_turn_p95_ms": round(1000 * _pct(turns, 0.95), 1),
            "hook_turn_events_stored": stored.get("events"),
            "hook_turn_events_expected": hook_runs,  # one event per appended tool call
            "hook_context_p50_ms": round(1000 * statistics.median(prompts), 1),
            "hook_context_p95_ms": round(1000 * _pct(prompts, 0.95), 1),
            "hook_runs": hook_runs,
        }
        log(
            f"hook, incremental turn: p50 {result['hook_turn_p50_ms']} ms, p95 {result['hook_turn_p95_ms']} ms; "
            f"with context: p50 {result['hook_context_p50_ms']} ms, p95 {result['hook_context_p95_ms']} ms"
        )
        return result
    finally:
        stop_process(server)
        shutil.rmtree(work, ignore_errors=True)
