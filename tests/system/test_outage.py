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
def own_server(request, settings, service, own_data_dir):
    """A Service on an embedded PostgreSQL of its own, sharing the session's model; its
    watchdog restarts a dead server unless the test is marked `no_restart`."""
    if settings.database_url:
        pytest.skip("needs the embedded server")
    restart = request.node.get_closest_marker("no_restart") is None
    s = settings.model_copy(update={"data_dir": own_data_dir, "pool_timeout_s": 1.0, "embedded_restart": restart})
    svc = Service(s, connect_database(s), service.embedder)
    svc.worker.start()
    yield svc
    svc.close()  # the last user of the embedded server stops it
    assert not (s.pgdata / "postmaster.pid").exists()


@pytest.mark.no_restart  # the outage lasts until the test ends it
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


def test_a_killed_embedded_postgres_is_started_again_and_ready_within_10_s(own_server, project):
    """kill -9 of the postmaster: the service starts its PostgreSQL again by itself (crash
    recovery from the WAL), /readyz is 200 again within 10 s, and nothing acknowledged is lost."""
    import psutil

    pgdata = own_server.settings.pgdata
    with TestClient(create_app(own_server.settings, service=own_server), raise_server_exceptions=False) as c:
        batch = {"events": [event(project, "s1", n, "decision", f"keep the ledger append-only {n}") for n in range(5)]}
        assert c.post("/v1/events", json=batch).status_code == 202
        postmaster = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        os.kill(postmaster, 9)
        t0 = time.monotonic()
        wait_until(lambda: not psutil.pid_exists(postmaster), 10, "the postmaster to die")
        wait_until(lambda: c.get("/readyz").status_code == 200, 10, "readiness after the kill")
        assert time.monotonic() - t0 < 10
        assert own_server.watchdog.restarts == 1
        assert c.get("/healthz").status_code == 200
        assert own_server.stats(project).events == 5  # acknowledged before the kill: still there
        more = {"events": [event(project, "s1", n, "note", f"after the restart {n}") for n in range(5, 7)]}
        assert c.post("/v1/events", json=more).status_code == 202
        assert c.post("/v1/search", json={"query": "ledger", "project_id": project, "mode": "text"}).json()["results"]


def test_healthz_fails_while_the_embedded_server_cannot_be_started_again(own_server, project):
    """A server that will not start (its data dir unreadable to it) makes /healthz fail once
    restarts have failed for embedded_give_up_s; once it can start, the watchdog starts it."""
    import psutil

    own_server.watchdog.give_up_s = 1.0
    pgdata = own_server.settings.pgdata
    with TestClient(create_app(own_server.settings, service=own_server), raise_server_exceptions=False) as c:
        assert c.get("/healthz").status_code == 200
        postmaster = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        mode = pgdata.stat().st_mode
        pgdata.chmod(0)
        try:
            os.kill(postmaster, 9)
            wait_until(lambda: not psutil.pid_exists(postmaster), 10, "the postmaster to die")
            r = wait_until(lambda: (r := c.get("/healthz")).status_code == 503 and r, 30, "healthz to fail")
            assert "failed to start" in r.json()["error"]
            assert c.get("/readyz").status_code == 503
        finally:
            pgdata.chmod(mode)
        wait_until(lambda: c.get("/healthz").status_code == 200, 30, "healthz once the server starts")
        wait_until(lambda: c.get("/readyz").status_code == 200, 10, "readiness once the server starts")
