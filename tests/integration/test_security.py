"""API keys and project isolation, request limits, rate limits, and `serve`'s refusal to
bind beyond loopback without keys."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from ctxsearch.auth import Forbidden, KeyRing, Principal, check_project, current_principal
from ctxsearch.cli.main import main
from ctxsearch.http.app import create_app
from tests.conftest import event

KEY_A, KEY_B, KEY_ADMIN = "key-a-0123456789abcdef", "key-b-0123456789abcdef", "key-admin-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed(settings, service):
    # Failed authentications are many here, from one address: their throttle has a test of its own.
    s = settings.model_copy(
        update={"api_keys": {KEY_A: ["alpha"], KEY_B: ["beta"], KEY_ADMIN: ["*"]}, "auth_failures_per_s": 0}
    )
    with TestClient(create_app(s, service=service)) as c:
        yield c


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def requests_for(project: str) -> list[tuple[str, str, dict]]:
    """One request of each kind, reads and writes, on `project`."""
    return [
        ("POST", "/v1/events", {"json": {"events": [event(project, "s1", 1, "note", "hello")]}}),
        ("POST", "/v1/search", {"json": {"query": "hello", "project_id": project}}),
        ("GET", "/v1/sessions/s1", {"params": {"project_id": project}}),
        ("PUT", "/v1/sessions/s1/summary", {"json": {"project_id": project, "summary": "done"}}),
        ("GET", f"/v1/projects/{project}/stats", {}),
        ("GET", f"/v1/projects/{project}/sessions", {}),
        ("GET", "/v1/events/s1-1", {"params": {"project_id": project}}),
        ("GET", "/v1/sessions/s1/timeline", {"params": {"project_id": project}}),
        ("DELETE", "/v1/sessions/s1", {"params": {"project_id": project}}),  # last: it erases what came before
    ]


@pytest.mark.parametrize(
    "headers,message",
    [
        ({}, "missing API key"),
        ({"Authorization": "Bearer not-a-key"}, "unknown API key"),
        ({"Authorization": f"Basic {KEY_A}"}, "missing API key"),
    ],
)
def test_every_route_needs_a_known_key(keyed, headers, message):
    for method, path, kw in requests_for("alpha"):
        r = keyed.request(method, path, headers=headers, **kw)
        assert r.status_code == 401, (method, path, r.text)
        assert message in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
    # MCP is covered too, whatever serves it.
    assert keyed.post("/mcp", json={}, headers=headers).status_code == 401
    assert keyed.get("/mcp/anything", headers=headers).status_code == 401


def test_a_key_cannot_touch_another_projects_data(keyed):
    for method, path, kw in requests_for("beta"):
        r = keyed.request(method, path, headers=auth(KEY_A), **kw)
        assert r.status_code == 403, (method, path, r.text)
        assert "'beta'" in r.json()["error"] and KEY_A not in r.text
    assert keyed.delete("/v1/projects/beta", headers=auth(KEY_A)).status_code == 403
    # A batch that mixes an allowed and a forbidden project is refused whole.
    mixed = {"events": [event("alpha", "s1", 1, content="ok"), event("beta", "s1", 2, content="sneaky")]}
    assert keyed.post("/v1/events", json=mixed, headers=auth(KEY_A)).status_code == 403
    # A repeated query parameter cannot smuggle a project past the check.
    r = keyed.get("/v1/sessions/s1?project_id=alpha&project_id=beta", headers=auth(KEY_A))
    assert r.status_code == 403


def test_own_project_and_wildcard_key_work(keyed, wait_indexed):
    for method, path, kw in requests_for("alpha"):
        r = keyed.request(method, path, headers=auth(KEY_A), **kw)
        assert r.status_code in (200, 202), (method, path, r.text)
    assert keyed.get("/v1/projects/beta/stats", headers=auth(KEY_ADMIN)).status_code == 200
    assert keyed.get("/v1/projects/alpha/stats", headers=auth(KEY_B)).status_code == 403
    # Ops endpoints stay open for probes and scrapers.
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path


def test_check_project_helper_for_mcp_tools():
    assert KeyRing({}).authenticate("x") is None
    ring = KeyRing({"k1": ["p1", "p2"], "k2": ["*"]})
    p1, all_ = ring.authenticate("k1"), ring.authenticate("k2")
    assert p1.allows("p2") and not p1.allows("p3") and all_.projects is None and ring.authenticate("k3") is None
    check_project("anything")  # no request, no keys: allowed
    token = current_principal.set(p1)
    try:
        check_project("p1")
        with pytest.raises(Forbidden):
            check_project("p3")
    finally:
        current_principal.reset(token)
    with pytest.raises(Forbidden):
        check_project("p3", Principal(key_id="x", projects=frozenset({"p1"})))


def test_rate_limit_per_key_answers_429_with_retry_after(settings, service):
    s = settings.model_copy(
        update={"api_keys": {KEY_A: ["alpha"], KEY_B: ["beta"]}, "rate_limit_per_s": 0.5, "rate_limit_burst": 3}
    )
    with TestClient(create_app(s, service=service)) as c:
        codes = [c.get("/v1/projects/alpha/stats", headers=auth(KEY_A)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/v1/projects/alpha/stats", headers=auth(KEY_A))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "rate_limit_per_s" in r.json()["error"]
        # Another key has its own bucket.
        assert c.get("/v1/projects/beta/stats", headers=auth(KEY_B)).status_code == 200


def test_oversized_body_is_413_before_parsing(settings, service, project):
    s = settings.model_copy(update={"max_body_bytes": 4096})
    with TestClient(create_app(s, service=service)) as c:
        big = {"events": [event(project, "s", 1, content="x" * 5000)]}
        r = c.post("/v1/events", json=big)
        assert r.status_code == 413 and "max_body_bytes" in r.json()["error"]

        def chunks():  # no Content-Length: counted as it streams in
            for _ in range(10):
                yield b"x" * 1000

        r = c.post("/v1/events", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "max_body_bytes" in r.json()["error"]
        assert c.get(f"/v1/projects/{project}/stats").json()["events"] == 0


@pytest.mark.parametrize(
    "body,status,needle",
    [
        ({"query": "q" * 2001}, 422, "query: String should have at most 2000 characters"),
        ({"limit": 101}, 422, "limit: Input should be less than or equal to 100"),
        ({"limit": 0}, 422, "limit"),
        ({"limit": "ten"}, 422, "limit"),
        ({"since": "last tuesday"}, 422, "since"),
        ({"mode": "psychic"}, 422, "mode"),
        ({"project_id": ""}, 422, "project_id"),
    ],
)
def test_search_limits_name_the_field(client, body, status, needle):
    r = client.post("/v1/search", json={"query": "x", "project_id": "p", **body})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


@pytest.mark.parametrize(
    "change,status,needle",
    [
        ({"payload": {"blob": "x" * 70_000}}, 413, "max_payload_bytes"),
        ({"content": "x" * 100_001}, 413, "at most 100000 characters"),
        ({"timestamp": "2026-13-45T99:00:00Z"}, 422, "timestamp"),
        ({"timestamp": 12}, 422, "timestamp"),
        ({"tokens": 1e300}, 422, "tokens"),
    ],
)
def test_event_limits_name_the_field(client, project, change, status, needle):
    r = client.post("/v1/events", json={"events": [{**event(project, "s", 1, content="x"), **change}]})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00junk", b"[" * 100_000, b'{"events": [' + b"{}," * 5 + b"]}", b""])
def test_junk_bytes_are_a_4xx_not_a_traceback(client, raw):
    r = client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert "error" in r.json() and "Traceback" not in r.text


@pytest.mark.parametrize(
    "path", ["/v1/sessions/s1?project_id=%00", "/v1/projects/a%00b/stats", "/v1/sessions/%01?project_id=p"]
)
def test_control_characters_in_ids_are_refused(client, path):
    r = client.get(path)
    assert r.status_code == 422 and "must not contain control characters" in r.json()["error"]


def test_request_id_is_echoed_or_made(client):
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert len(client.get("/healthz").headers["x-request-id"]) == 32


def test_serve_refuses_a_public_address_without_keys(monkeypatch):
    monkeypatch.delenv("CTXSEARCH_API_KEYS", raising=False)
    runner = CliRunner()
    r = runner.invoke(main, ["serve", "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "no API keys" in r.output and "--allow-unauthenticated" in r.output
    r = runner.invoke(main, ["serve"], env={"CTXSEARCH_API_KEYS": '{"secret-key-value": []}'})
    assert r.exit_code == 2 and "api_keys" in r.output and "secret-key-value" not in r.output
    r = runner.invoke(main, ["serve"], env={"CTXSEARCH_API_KEYS": '{"secret-key-value": ['})
    assert r.exit_code == 2 and "api_keys" in r.output and "secret-key-value" not in r.output
    # A value of the wrong type: pydantic names the dict key (the API key) in the field's path.
    for value in ('{"sekrit-KEY-123": "a"}', '{"sekrit-KEY-123": [1]}'):
        r = runner.invoke(main, ["search", "x", "--project", "p"], env={"CTXSEARCH_API_KEYS": value})
        assert r.exit_code == 2 and "api_keys" in r.output and "sekrit" not in r.output, r.output


def test_openapi_documents_every_refusal(client):
    paths = client.get("/openapi.json").json()["paths"]
    operations = [
        (path, method, op) for path, ops in paths.items() if path.startswith("/v1") for method, op in ops.items()
    ]
    # The loop below checks nothing if the routes moved away from /v1.
    assert {"/v1/events", "/v1/search", "/v1/sessions/{session_id}"} <= set(paths) and len(operations) >= 6
    for path, method, op in operations:
        assert {"401", "403", "413", "422", "429", "503"} <= set(op["responses"]), (method, path)


def test_an_mcp_session_is_used_and_ended_only_with_the_key_that_made_it(keyed):
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    accept = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "Host": "127.0.0.1:8080",
    }
    r = keyed.post("/mcp", json=init, headers={**auth(KEY_A), **accept})
    assert r.status_code == 200, r.text
    session = r.headers["mcp-session-id"]
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    theirs = {**auth(KEY_B), **accept, "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    assert keyed.post("/mcp", json=ping, headers=theirs).status_code == 404
    assert keyed.delete("/mcp", headers=theirs).status_code == 404
    mine = {**theirs, **auth(KEY_A)}
    assert keyed.post("/mcp", json=ping, headers=mine).status_code == 200
    assert keyed.delete("/mcp", headers=mine).status_code in (200, 204)
