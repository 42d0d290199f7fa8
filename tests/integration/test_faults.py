"""Faults the database reports and overload: a full disk (507, no internal path, /readyz says
writes fail), lost lock conflicts (503 to retry, the pool not marked down), and shedding
beyond the concurrency bounds (503 with Retry-After at once)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import psycopg
import pytest

from tests.conftest import event


@pytest.fixture
def disk_full_for(service):
    """PostgreSQL refusing every write of one project's events as a full disk refuses them
    (SQLSTATE 53100, with the message it gives), through a trigger of the real server."""
    projects: list[str] = []

    def arm(project: str) -> None:
        projects.append(project)
        with psycopg.connect(service.db.url, autocommit=True) as conn:
            conn.execute(
                "CREATE OR REPLACE FUNCTION pg_temp_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN RAISE EXCEPTION 'could not extend file \"base/5/16495\": No space left on device'"
                " USING ERRCODE = 'disk_full'; END $$"
            )
            conn.execute(
                "CREATE TRIGGER test_disk_full BEFORE INSERT ON events FOR EACH ROW"
                f" WHEN (NEW.project_id = '{project}') EXECUTE FUNCTION pg_temp_disk_full()"
            )

    yield arm
    with psycopg.connect(service.db.url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER IF EXISTS test_disk_full ON events")
        conn.execute("DROP FUNCTION IF EXISTS pg_temp_disk_full()")
    service.db.wrote()


def test_a_full_disk_is_507_with_no_internal_path_and_readyz_says_writes_fail(client, service, project, disk_full_for):
    disk_full_for(project)
    r = client.post("/v1/events", json={"events": [event(project, "s", 1, "note", "one")]})
    assert r.status_code == 507, r.text
    message = r.json()["error"]
    assert "disk full" in message and "base/" not in message and "16495" not in message
    assert service.stats(project).events == 0 and service.stats(project).documents == 0  # nothing half-written
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "disk full" in ready.json()["error"]
    assert client.get("/healthz").status_code == 200  # the process itself is fine
    # Reads go on meanwhile.
    assert client.post("/v1/search", json={"query": "one", "project_id": project, "mode": "text"}).status_code == 200
    # Space is back: the next write succeeds and readiness returns.
    with psycopg.connect(service.db.url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER test_disk_full ON events")
    assert client.post("/v1/events", json={"events": [event(project, "s", 1, "note", "one")]}).status_code == 202
    assert client.get("/readyz").status_code == 200


def test_a_deadlock_victim_is_reported_as_one_and_the_pool_stays_up(service):
    """A statement that lost a lock cycle is retried by its caller; the database is not
    reported down for it (the pool marks down only what cannot be reached)."""
    with psycopg.connect(service.db.url, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS test_lock_a (x int); CREATE TABLE IF NOT EXISTS test_lock_b (x int)")
    other = psycopg.connect(service.db.url, autocommit=False)
    other.execute("SET deadlock_timeout = '10s'")  # the pooled connection is the one to find the cycle
    other.execute("LOCK TABLE test_lock_a")
    waiting = threading.Thread(target=lambda: other.execute("LOCK TABLE test_lock_b"))
    try:
        with pytest.raises(psycopg.errors.DeadlockDetected):
            with service.db.connection() as conn, conn.transaction():
                conn.execute("SET LOCAL deadlock_timeout = '100ms'")
                conn.execute("LOCK TABLE test_lock_b")
                waiting.start()
                deadline = time.monotonic() + 10
                while not conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)", (other.info.backend_pid,)
                ).fetchone()[0]:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                conn.execute("LOCK TABLE test_lock_a")
    finally:
        waiting.join(10)
        other.rollback()
        other.close()
        with psycopg.connect(service.db.url, autocommit=True) as setup:
            setup.execute("DROP TABLE test_lock_a, test_lock_b")
    assert not service.db._down and service.readiness() is None


@contextmanager
def busy(admission, kind: str):
    """One request of `kind` in flight, held by a thread of its own for the body's duration."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with admission.slot(kind):
            taken.set()
            done.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        done.set()
        thread.join(10)


@pytest.fixture
def bounded(service):
    """The service with one search and one ingest batch allowed at a time."""
    from ctxsearch.service.admission import Admission

    saved = service.admission
    service.admission = Admission({"search": 1, "ingest": 1})
    yield service.admission
    service.admission = saved


def test_beyond_the_bound_requests_are_shed_at_once_with_retry_after(client, project, bounded):
    assert client.post("/v1/events", json={"events": [event(project, "s", 1, "note", "shed me")]}).status_code == 202
    with busy(bounded, "search"):  # one search in flight
        t0 = time.monotonic()
        r = client.post("/v1/search", json={"query": "shed me", "project_id": project})
        took = time.monotonic() - t0
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert "busy" in r.json()["error"] and "max_concurrent_searches" in r.json()["error"]
        assert took < 0.5
        # Refused before the body is read: even one that is not JSON is shed, not parsed.
        r = client.post("/v1/search", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 503
        # Writes have a bound of their own: ingest still goes in.
        assert client.post("/v1/events", json={"events": [event(project, "s", 2, "note", "in")]}).status_code == 202
    with busy(bounded, "ingest"):
        r = client.post("/v1/events", json={"events": [event(project, "s", 3, "note", "out")]})
        assert r.status_code == 503 and "max_concurrent_ingests" in r.json()["error"]
        assert client.post("/v1/search", json={"query": "shed me", "project_id": project}).status_code == 200
    assert 'ctxsearch_shed_requests_total{kind="search"} 2.0' in client.get("/metrics").text
    # Nothing of the refused batch was stored; the admitted ones were.
    assert {e.id for e in client.app.state.service.events(project, ["s-1", "s-2", "s-3"]).events} == {"s-1", "s-2"}


def test_under_concurrent_load_every_request_is_answered_or_shed(client, project, bounded):
    """Twelve clients at once against a bound of one: each gets 200 or an immediate 503."""
    assert client.post("/v1/events", json={"events": [event(project, "s", 1, "note", "load test")]}).status_code == 202
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def one() -> None:
        start.wait()
        for _ in range(5):
            t0 = time.monotonic()
            r = client.post("/v1/search", json={"query": "load test", "project_id": project})
            with lock:
                results.append((r.status_code, time.monotonic() - t0))

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = {code for code, _ in results}
    assert len(results) == 60 and statuses <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    assert max(took for code, took in results if code == 503) < 0.5
