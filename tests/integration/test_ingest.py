"""POST /v1/events: idempotency, validation, atomicity, compression."""

from __future__ import annotations

import json

import pytest

from ctxsearch.domain.payload import decompress_payload
from tests.conftest import event


def test_retry_is_idempotent(client, project):
    batch = {"events": [event(project, "s1", i, content=f"step {i}") for i in range(5)]}
    first = client.post("/v1/events", json=batch)
    assert first.status_code == 202
    assert first.json() == {"accepted": 5, "duplicates": 0, "redactions": 0}

    again = client.post("/v1/events", json=batch)
    assert again.status_code == 202
    assert again.json() == {"accepted": 0, "duplicates": 5, "redactions": 0}

    # A batch overlapping the stored one stores only what is new.
    overlap = {"events": [event(project, "s1", i, content=f"step {i}") for i in range(3, 8)]}
    assert client.post("/v1/events", json=overlap).json() == {"accepted": 3, "duplicates": 2, "redactions": 0}

    stats = client.get(f"/v1/projects/{project}/stats").json()
    assert stats["events"] == 8
    assert stats["sessions"] == 1


def test_duplicate_ids_within_one_batch(client, project):
    e = event(project, "s1", 1, content="once")
    r = client.post("/v1/events", json={"events": [e, dict(e), event(project, "s1", 2, content="twice")]})
    assert r.json() == {"accepted": 2, "duplicates": 1, "redactions": 0}


def test_same_id_in_two_projects_is_two_events(client, project):
    other = project + "-other"
    r1 = client.post("/v1/events", json={"events": [event(project, "s", 1, "note", "a", id="shared-id")]})
    r2 = client.post("/v1/events", json={"events": [event(other, "s", 1, "note", "b", id="shared-id")]})
    assert r1.json()["accepted"] == 1 and r2.json()["accepted"] == 1


def test_events_without_ids_are_all_stored(client, project):
    evs = [event(project, "s", i, content="same text") for i in range(3)]
    for e in evs:
        e.pop("id")
    assert client.post("/v1/events", json={"events": evs}).json() == {"accepted": 3, "duplicates": 0, "redactions": 0}


def test_payload_is_stored_compressed_and_round_trips(client, service, project):
    payload = {"command": "pytest -x", "output": "ok " * 500, "nested": {"n": [1, 2, 3]}}
    client.post("/v1/events", json={"events": [event(project, "s", 1, "tool_call", "ran tests", payload=payload)]})
    with service.db.connection() as conn:
        blob = conn.execute("SELECT payload FROM events WHERE project_id = %s", (project,)).fetchone()[0]
    assert len(blob) < len(str(payload)) / 4
    assert decompress_payload(bytes(blob)) == payload


BAD_EVENTS = [
    ({"project_id": None}, "project_id"),
    ({"project_id": ""}, "project_id"),
    ({"session_id": 7}, "session_id"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"timestamp": "2026-11-20T10:00:00"}, "timestamp"),  # no UTC offset
    ({"type": "keystroke"}, "type"),
    ({"files": "src/app.py"}, "files"),
    ({"files": [""]}, "files"),
    ({"tokens": -3}, "tokens"),
    ({"tokens": "many"}, "tokens"),
    ({"payload": [1, 2]}, "payload"),
    ({"content": "nul \u0000 byte"}, "content"),
    ({"content": "x" * 100_001}, "content"),
    ({"id": ""}, "id"),
    ({"unexpected": 1}, "unexpected"),
    # A lone surrogate: valid JSON, but no UTF-8 text (so no database) can hold it.
    ({"files": ["a\ud800.py"]}, "files"),
    ({"content": "half a pair \udc00"}, "content"),
    ({"payload": {"k\ud800": 1}}, "payload"),
    ({"payload": {"k": ["v\udfff"]}}, "payload"),
    ({"tool": "Bash\ud800"}, "tool"),
    ({"session_id": "s\ud800"}, "session_id"),
]


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("change,field", BAD_EVENTS, ids=[f for _, f in BAD_EVENTS])
def test_bad_event_is_refused_naming_the_field_and_nothing_is_stored(client, project, change, field):
    good = event(project, "s", 1, content="fine")
    bad = {**event(project, "s", 2, content="bad"), **change}
    # As a client sends it: JSON escapes (\\ud800) where the text cannot be UTF-8.
    r = client.post("/v1/events", content=json.dumps({"events": [good, bad]}), headers=JSON)
    too_long = len(str(change.get("content", ""))) > 100_000
    assert r.status_code == (413 if too_long else 422)  # a size limit is 413
    body = r.json()
    assert f"events[1].{field}" in body["error"], body
    assert client.get(f"/v1/projects/{project}/stats").json()["events"] == 0


@pytest.mark.parametrize(
    "body,needle",
    [
        ({}, "events"),
        ({"events": []}, "events"),
        ({"events": "nope"}, "events"),
        ({"events": [{}] * 1001}, "events"),
    ],
)
def test_bad_batch_is_refused(client, body, needle):
    r = client.post("/v1/events", json=body)
    assert r.status_code == (413 if len(body.get("events", [])) > 1000 else 422)
    assert needle in r.json()["error"]


def test_a_lone_surrogate_in_a_search_is_a_422_on_a_kept_connection(client, project):
    for field, body in (
        ("files", {"query": "x", "project_id": project, "files": ["a\ud800.py"]}),
        ("query", {"query": "x\ud800", "project_id": project}),
    ):
        r = client.post("/v1/search", content=json.dumps(body), headers=JSON)
        assert r.status_code == 422 and r.json()["error"].startswith(field), r.text
        assert r.headers.get("connection") != "close"


def test_malformed_json_is_a_4xx(client):
    r = client.post("/v1/events", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_events_are_embedded_with_the_event_before_them(client, service, project):
    """The previous event of the session (from the same batch or an earlier one) becomes the context."""
    first = [
        event(project, "s1", 0, "message", "Which breed is the new puppy?"),
        event(project, "s1", 2, "message", "A golden retriever."),
        event(project, "s2", 1, "message", "Unrelated session opener"),
    ]
    assert client.post("/v1/events", json={"events": first}).status_code == 202
    later = [event(project, "s1", 3, "message", "She is three months old.")]
    assert client.post("/v1/events", json={"events": later}).status_code == 202
    with service.db.connection() as conn:
        ctx = dict(
            conn.execute(
                "SELECT event_id, context FROM documents WHERE project_id = %s AND kind = 'event'", (project,)
            ).fetchall()
        )
    assert ctx == {"s1-0": None, "s1-2": "Which breed is the new puppy?", "s2-1": None, "s1-3": "A golden retriever."}


def test_payloads_compress_on_concurrent_request_threads():
    """Ingest runs on the API's thread pool: payload (de)compression must be thread-safe."""
    from concurrent.futures import ThreadPoolExecutor

    from ctxsearch.domain.payload import compress_payload, decompress_payload

    payloads = [{"n": n, "diff": "".join(f"line {i} of change {n}\n" for i in range(400))} for n in range(64)]

    def round_trip(p: dict) -> bool:
        return all(decompress_payload(compress_payload(p)) == p for _ in range(20))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(round_trip, payloads))


def test_an_event_nothing_could_find_is_refused(client, project):
    """No text, no tool, no files: it could only ever be an empty hit."""
    blank = [event(project, "s", 1, "note", ""), event(project, "s", 2, "message", "  \n ")]
    for e in blank:
        r = client.post("/v1/events", json={"events": [event(project, "s", 0, "note", "fine"), e]})
        assert r.status_code == 422 and r.json()["error"].startswith("events[1]"), r.text
        assert "nothing would find this event" in r.json()["error"]
    assert client.get(f"/v1/projects/{project}/stats").json()["events"] == 0  # the batch is refused whole
    ok = [event(project, "s", 3, "tool_call", "", tool="Bash"), event(project, "s", 4, "file_edit", "", files=["a.py"])]
    assert client.post("/v1/events", json={"events": ok}).status_code == 202
