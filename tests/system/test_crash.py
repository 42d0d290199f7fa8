"""Crash safety with real processes: `ctxsearch serve` and its embedded PostgreSQL are
SIGKILLed in the middle of a stream of batches. Every batch acknowledged with 202 must
survive, resending stores nothing twice, and the embed queue drains after the restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from ctxsearch.bench.runner import wait_for_server
from tests.conftest import event

ROOT = Path(__file__).resolve().parents[2]
KEY = "crash-test-key-0123456789"
BATCH = 25


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "CTXSEARCH_API_KEYS": json.dumps({KEY: ["crash"]}),
        "CTXSEARCH_WORKER_POLL_S": "0.2",
    }
    env.pop("CTXSEARCH_DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "ctxsearch", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_ready(base: str, proc: subprocess.Popen, log: Path) -> None:
    wait_for_server(base, proc, lambda: log.read_text()[-3000:], path="/readyz")


def kill_postgres(pgdata: Path) -> None:
    """SIGKILL the postmaster and every backend, as a machine crash would."""
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return
    try:
        postmaster = psutil.Process(int(pidfile.read_text().splitlines()[0]))
        procs = [postmaster, *postmaster.children(recursive=True)]
    except (psutil.NoSuchProcess, ValueError, IndexError):
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def batch(n: int) -> dict:
    return {
        "events": [
            event(
                "crash", f"s{n % 3}", n * BATCH + i, "note", f"batch {n} event {i} about flaky retries", id=f"b{n}-e{i}"
            )
            for i in range(BATCH)
        ]
    }


@pytest.mark.timeout(420)
def test_sigkill_mid_stream_loses_nothing_acknowledged_and_stores_nothing_twice(own_data_dir, tmp_path):
    data_dir, log = own_data_dir, tmp_path / "serve.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {KEY}"}
    proc = start_server(data_dir, port, log)
    try:
        wait_ready(base, proc, log)
        acked: list[int] = []
        sent: list[int] = []
        stop = threading.Event()

        def stream() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=10) as c:
                n = 0
                while not stop.is_set():
                    sent.append(n)
                    try:
                        r = c.post("/v1/events", json=batch(n))
                    except httpx.HTTPError:
                        return  # the server is gone; what was acknowledged is what counts
                    if r.status_code == 202:
                        acked.append(n)
                    n += 1

        streamer = threading.Thread(target=stream)
        streamer.start()
        deadline = time.monotonic() + 120
        while len(acked) < 12 and time.monotonic() < deadline and streamer.is_alive():
            time.sleep(0.05)
        assert len(acked) >= 12, log.read_text()[-3000:]
        # Kill while batches are still in flight.
        os.killpg(proc.pid, signal.SIGKILL)
        kill_postgres(data_dir / "pgdata")
        proc.wait(10)
        stop.set()
        streamer.join(30)
        acked_ids = {f"b{n}-e{i}" for n in acked for i in range(BATCH)}

        proc = start_server(data_dir, port, log)
        wait_ready(base, proc, log)
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            stats = c.get("/v1/projects/crash/stats").json()
            # Everything acknowledged survived; at most the batch in flight was also stored.
            assert len(acked_ids) <= stats["events"] <= len(acked_ids) + BATCH, stats
            for n in acked:
                r = c.post("/v1/events", json=batch(n))
                assert r.status_code == 202 and r.json() == {"accepted": 0, "duplicates": BATCH, "redactions": 0}, (
                    r.text
                )
            for n in sorted(set(sent) - set(acked)):
                assert c.post("/v1/events", json=batch(n)).status_code == 202
            total = len(set(sent)) * BATCH
            deadline = time.monotonic() + 180
            while (stats := c.get("/v1/projects/crash/stats").json())["pending"] and time.monotonic() < deadline:
                time.sleep(0.5)
            # Each event once, each with one document, all embedded: the queue resumed.
            assert stats["events"] == total and stats["pending"] == 0, stats
            assert stats["documents"] == total + stats["sessions"], stats
            hits = c.post("/v1/search", json={"query": "flaky retries", "project_id": "crash", "limit": 5}).json()
            assert len(hits["results"]) == 5
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        kill_postgres(data_dir / "pgdata")
