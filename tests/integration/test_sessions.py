"""Condensing: metrics, key events, extracted and agent summaries."""

from __future__ import annotations

from ctxsearch.domain.condense import run_outcome
from ctxsearch.store.sessions import condense_session, get_session
from tests.conftest import event


def _debugging_session(project: str, session: str = "s1") -> list[dict]:
    return [
        event(project, session, 0, "message", "Users report a 500 on checkout when the cart is empty; fix it."),
        event(project, session, 1, "tool_call", "grep -rn checkout src/", tool="bash"),
        event(
            project,
            session,
            2,
            "tool_call",
            "open src/shop/checkout.py",
            tool="read_file",
            files=["src/shop/checkout.py"],
        ),
        event(
            project,
            session,
            3,
            "error",
            "ZeroDivisionError: division by zero in compute_average_price",
            files=["src/shop/checkout.py"],
        ),
        event(
            project,
            session,
            4,
            "decision",
            "Decided to return an empty order summary for empty carts instead of computing averages, "
            "because the payment provider rejects zero totals.",
        ),
        event(
            project,
            session,
            5,
            "file_edit",
            "Guard compute_average_price against empty carts",
            files=["src/shop/checkout.py"],
            tokens=300,
        ),
        event(project, session, 6, "test_run", "1 failed, 20 passed", tool="pytest", payload={"exit_code": 1}),
        event(project, session, 7, "file_edit", "Fix test fixture for empty cart", files=["tests/test_checkout.py"]),
        event(project, session, 8, "test_run", "21 passed", tool="pytest", payload={"exit_code": 0}),
        event(project, session, 9, "commit", "Handle empty carts at checkout (fixes #412)", tokens=50),
    ]


def test_session_metrics_key_events_and_summary(client, project, wait_indexed):
    client.post("/v1/events", json={"events": _debugging_session(project)})
    wait_indexed(project)
    r = client.get("/v1/sessions/s1", params={"project_id": project})
    assert r.status_code == 200
    s = r.json()
    m = s["metrics"]
    assert s["event_count"] == 10
    assert m["by_type"]["tool_call"] == 2
    assert m["tool_calls"] == {"bash": 1, "read_file": 1}
    assert m["files_touched"] == 2
    assert m["top_files"][0] == {"path": "src/shop/checkout.py", "events": 3}
    assert m["decisions"] == 1 and m["errors"] == 1 and m["error_rate"] == 0.1
    assert m["test_runs"] == {"total": 2, "passed": 1, "failed": 1}
    assert m["tokens"] == 350
    assert m["duration_s"] == 9.0

    by_importance = [k["type"] for k in sorted(s["key_events"], key=lambda k: -k["importance"])]
    assert set(by_importance[:3]) >= {"decision", "error"}
    assert by_importance[-1] == "tool_call"
    assert [k["timestamp"] for k in s["key_events"]] == sorted(k["timestamp"] for k in s["key_events"])

    summary = s["summary"]
    assert s["summary_source"] == "extracted"
    assert "500 on checkout" in summary
    assert "empty order summary" in summary
    assert "ZeroDivisionError" in summary
    assert "last passing" in summary


def test_key_events_are_capped(service, client, project, wait_indexed):
    evs = [
        event(project, "long", i, "decision" if i % 3 == 0 else "note", f"point number {i} about caching")
        for i in range(40)
    ]
    client.post("/v1/events", json={"events": evs})
    wait_indexed(project)
    s = client.get("/v1/sessions/long", params={"project_id": project}).json()
    assert len(s["key_events"]) == 10  # the default
    with service.db.connection() as conn, conn.transaction():
        condense_session(conn=conn, project_id=project, session_id="long", n_key_events=3)
        row = get_session(conn=conn, project_id=project, session_id="long")
    assert len(row["key_events"]) == 3


def test_agent_summary_wins_and_is_searchable(client, project, wait_indexed, search):
    client.post("/v1/events", json={"events": _debugging_session(project)})
    wait_indexed(project)
    text = "Agent summary: the checkout crash came from averaging an empty cart; orders now short-circuit."
    r = client.put("/v1/sessions/s1/summary", json={"project_id": project, "summary": text})
    assert r.status_code == 200
    assert r.json()["summary"] == text and r.json()["summary_source"] == "agent"

    # More events re-condense the session; the agent's summary still wins.
    client.post("/v1/events", json={"events": [event(project, "s1", 30, "note", "follow-up note")]})
    wait_indexed(project)
    s = client.get("/v1/sessions/s1", params={"project_id": project}).json()
    assert s["summary"] == text and s["event_count"] == 11

    hits = search(project, "short-circuit averaging empty cart", kinds=["summary"])
    assert len(hits) == 1
    assert hits[0]["id"] == "summary:s1"
    assert "short" in hits[0]["snippet"]


def test_unknown_session_is_404(client, project):
    r = client.get("/v1/sessions/nope", params={"project_id": project})
    assert r.status_code == 404
    assert "nope" in r.json()["error"]


def test_session_needs_project_id(client):
    r = client.get("/v1/sessions/s1")
    assert r.status_code == 422
    assert "project_id" in r.json()["error"]


def test_summary_validation(client, project):
    r = client.put("/v1/sessions/s1/summary", json={"project_id": project, "summary": "   "})
    assert r.status_code == 422 and "summary" in r.json()["error"]


def test_test_outcome_reading():
    assert run_outcome("", {"exit_code": 0}) is True
    assert run_outcome("", {"passed": False}) is False
    assert run_outcome("3 failed, 10 passed", None) is False
    assert run_outcome("0 failed", None) is True
    assert run_outcome("== 12 passed in 0.3s ==", None) is True
    assert run_outcome("ran something", None) is None


def test_reading_a_session_never_writes(client, service, project):
    """A changed session is shown as it is now, computed in memory: a read can go to a
    replica (read-only transactions) and never takes a writer's lock."""
    from ctxsearch.store.sessions import read_session

    evs = [event(project, "ro", i, "error" if i == 2 else "note", f"step {i} of the rollout") for i in range(4)]
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    with service.db.connection() as conn:
        conn.execute("SET default_transaction_read_only = on")
        try:
            with conn.transaction():
                row = read_session(conn=conn, project_id=project, session_id="ro", n_key_events=3)
        finally:
            conn.execute("RESET default_transaction_read_only")
    assert row["event_count"] == 4 and row["metrics"]["errors"] == 1
    assert len(row["key_events"]) == 3
