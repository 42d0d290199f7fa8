"""A database outage with the real embedded server (its own data dir, so the session's
server is untouched): 503 and not ready while PostgreSQL is down, and back by itself."""

from __future__ import annotations

import os
import time

import pgserver
import pytest
from fastapi.testclient import TestClient
from pgserver._commands import pg_ctl

from ctxsearch.http.app import create_app
from ctxsearch.service.facade import Service
from ctxsearch.store.db import connect_database
from tests.conftest import event


def _pg_user() -> dict:
    # pgserver runs postgres as the `pgserver` system user when we are root.
    return {"user": "pgserver"} if os.geteuid() == 0 else {}


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def own_server(settings, service, own_data_dir):
    """A Service on an embedded PostgreSQL of its own, sharing the session's model."""
    if settings.database_url:
        pytest.skip("needs the embedded server")
    s = settings.model_copy(update={"data_dir": own_data_dir, "pool_timeout_s": 1.0})
    svc = Service(s, connect_database(s), service.embedder)
    svc.worker.start()
    yield svc
    svc.close()  # the last user of the embedded server stops it
    assert not (s.pgdata / "postmaster.pid").exists()


def test_database_outage_gives_503_and_recovers_by_itself(own_server, project):
    pgdata = own_server.settings.pgdata
    with TestClient(create_app(own_server.settings, service=own_server), raise_server_exceptions=False) as c:
        batch = {"events": [event(project, "s1", n, "decision", f"use retry budget {n}") for n in range(5)]}
        assert c.post("/v1/events", json=batch).status_code == 202
        assert c.get("/readyz").status_code == 200

        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, **_pg_user())

        more = {"events": [event(project, "s1", n, "note", f"written after the outage {n}") for n in range(5, 8)]}
        for method, path, kw in (
            ("POST", "/v1/events", {"json": more}),
            ("POST", "/v1/search", {"json": {"query": "retry", "project_id": project}}),
            ("GET", f"/v1/projects/{project}/stats", {}),
            ("GET", "/v1/sessions/s1", {"params": {"project_id": project}}),
        ):
            t0 = time.monotonic()
            r = c.request(method, path, **kw)
            assert r.status_code == 503, (path, r.text)
            assert time.monotonic() - t0 < 3.0  # quick, not a hang
            assert r.json()["error"].startswith("database unavailable") and r.headers["retry-after"]
        r = c.get("/readyz")
        assert r.status_code == 503 and "database unavailable" in r.json()["error"]
        assert c.get("/healthz").status_code == 200  # the process is alive
        assert "ctxsearch_database_up 0.0" in c.get("/metrics").text

        # PostgreSQL comes back (as after a crash: recovery from the WAL); nobody restarts us.
        server = pgserver.get_server(pgdata)
        with server._lock:
            server.ensure_postgres_running()

        wait_until(lambda: c.get("/readyz").status_code == 200, 30, "readiness after the restart")
        assert c.post("/v1/events", json=more).status_code == 202
        stats = wait_until(
            lambda: (s := c.get(f"/v1/projects/{project}/stats").json())["pending"] == 0 and s,
            60,
            "the worker to catch up",
        )
        assert stats["events"] == 8
        hits = c.post("/v1/search", json={"query": "retry budget", "project_id": project}).json()["results"]
        assert hits
