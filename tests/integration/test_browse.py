"""Listing and reading what is stored: projects, a project's sessions page by page, one event in
full, a session's timeline around an event — over HTTP, through the client and from the CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ctxsearch.cli.main import main
from ctxsearch.client import Client, NotFound
from tests.conftest import event

TRACEBACK = "Traceback (most recent call last):\n" + "".join(
    f'  File "app/billing/step_{i}.py", line {i}, in charge_{i}\n    total = apply_discount(cart, code_{i})\n'
    for i in range(60)
)  # about 5,000 characters, as a long error is


@pytest.fixture(scope="module")
def shop(client) -> str:
    """A project with three sessions; s2's fourth event is a long traceback with a payload."""
    import uuid

    project = f"shop-{uuid.uuid4().hex[:8]}"
    events = [event(project, "s1", i, "note", f"planning step {i}") for i in range(3)]
    events += [event(project, "s2", 10 + i, "note", f"checkout work {i}") for i in range(3)]
    events.append(
        event(project, "s2", 13, "error", TRACEBACK + "KeyError: 'discount'", payload={"exit_code": 1, "cmd": "pytest"})
    )
    events += [event(project, "s2", 14 + i, "note", f"after the error {i}") for i in range(3)]
    events += [event(project, "s3", 30, "decision", "Use integer cents for every amount")]
    r = client.post("/v1/events", json={"events": events})
    assert r.status_code == 202 and r.json()["accepted"] == len(events)
    return project


def test_projects_list_counts_and_activity(client, shop):
    listed = {p["project_id"]: p for p in client.get("/v1/projects").json()["projects"]}
    p = listed[shop]
    assert p["sessions"] == 3 and p["events"] == 11
    assert p["first_activity"] == "2026-11-20T10:00:00Z" and p["last_activity"] == "2026-11-20T10:00:30Z"


def test_sessions_page_newest_first_with_title_and_errors(client, shop):
    r = client.get(f"/v1/projects/{shop}/sessions", params={"limit": 2})
    assert r.status_code == 200, r.text
    page = r.json()
    assert [s["session_id"] for s in page["sessions"]] == ["s3", "s2"]
    s2 = page["sessions"][1]
    assert s2["event_count"] == 7 and s2["errors"] == 1 and s2["title"]
    assert s2["started_at"] == "2026-11-20T10:00:10Z" and s2["ended_at"] == "2026-11-20T10:00:16Z"
    rest = client.get(f"/v1/projects/{shop}/sessions", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [s["session_id"] for s in rest["sessions"]] == ["s1"] and rest["next_cursor"] is None


@pytest.mark.parametrize("cursor", ["garbage", "WyIyMDI2Il0.AAAA", "x" * 20_000])
def test_a_bad_sessions_cursor_is_a_400_or_422(client, shop, cursor):
    r = client.get(f"/v1/projects/{shop}/sessions", params={"cursor": cursor})
    assert r.status_code in (400, 422) and "cursor" in r.json()["error"]


def test_a_sessions_cursor_is_signed(client, shop):
    import base64

    page = client.get(f"/v1/projects/{shop}/sessions", params={"limit": 1}).json()
    body, _, sig = page["next_cursor"].partition(".")
    forged = base64.urlsafe_b64encode(b'["2030-01-01T00:00:00+00:00","a"]').decode().rstrip("=")
    r = client.get(f"/v1/projects/{shop}/sessions", params={"cursor": f"{forged}.{sig}"})
    assert r.status_code == 400 and "altered" in r.json()["error"]


def test_an_event_in_full_with_its_payload(client, shop):
    r = client.get("/v1/events/s2-13", params={"project_id": shop})
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["content"] == TRACEBACK + "KeyError: 'discount'" and len(e["content"]) > 4000
    assert e["payload"] == {"exit_code": 1, "cmd": "pytest"} and e["type"] == "error" and e["session_id"] == "s2"


def test_an_unknown_event_is_404_naming_it(client, shop):
    r = client.get("/v1/events/nope", params={"project_id": shop})
    assert r.status_code == 404 and "'nope'" in r.json()["error"]
    assert client.get("/v1/events/s2-13").status_code == 422  # project_id is required


def test_timeline_around_an_event(client, shop):
    params = {"project_id": shop, "around": "s2-13", "before": 2, "after": 1, "max_chars": 100}
    t = client.get("/v1/sessions/s2/timeline", params=params).json()
    assert [e["id"] for e in t["events"]] == ["s2-11", "s2-12", "s2-13", "s2-14"]
    assert [e["position"] for e in t["events"]] == [1, 2, 3, 4]
    hit = t["events"][2]
    assert hit["truncated"] and len(hit["content"]) == 100 and hit["content_chars"] > 4000
    assert t["total"] == 7 and t["more_before"] and t["more_after"]


def test_timeline_from_the_start_and_at_the_ends(client, shop):
    t = client.get("/v1/sessions/s2/timeline", params={"project_id": shop, "after": 2}).json()
    assert [e["id"] for e in t["events"]] == ["s2-10", "s2-11", "s2-12"] and not t["more_before"] and t["more_after"]
    t = client.get("/v1/sessions/s2/timeline", params={"project_id": shop, "around": "s2-16", "before": 1}).json()
    assert [e["id"] for e in t["events"]] == ["s2-15", "s2-16"] and not t["more_after"]


def test_timeline_refusals(client, shop):
    r = client.get("/v1/sessions/s2/timeline", params={"project_id": shop, "around": "s1-0"})
    assert r.status_code == 404 and "around" in r.json()["error"]  # an event of another session
    r = client.get("/v1/sessions/nope/timeline", params={"project_id": shop})
    assert r.status_code == 404 and "'nope'" in r.json()["error"]
    r = client.get("/v1/sessions/s2/timeline", params={"project_id": shop, "before": 501})
    assert r.status_code == 422 and "before" in r.json()["error"]


def test_a_summary_hit_reads_as_its_summary(service, shop, wait_indexed):
    wait_indexed(shop)
    got = service.events(shop, ["summary:s2", "s2-10", "absent"])
    assert [e.id for e in got.events] == ["summary:s2", "s2-10"] and got.missing == ["absent"]
    assert got.events[0].type == "summary" and "7 events" in got.events[0].content


def test_an_unknown_project_names_the_closest(service, shop):
    from ctxsearch.service.facade import NotFound as Missing

    with pytest.raises(Missing, match=f"did you mean '{shop}'"):
        service.require_project(shop.upper())
    service.require_project(shop)  # stored: no error


def test_keys_see_only_their_projects(settings, service, shop):
    from fastapi.testclient import TestClient

    from ctxsearch.http.app import create_app

    key = "browse-key-0123456789abcdef"
    keyed = settings.model_copy(update={"api_keys": {key: [shop]}})
    with TestClient(create_app(keyed, service=service)) as c:
        auth = {"Authorization": f"Bearer {key}"}
        assert [p["project_id"] for p in c.get("/v1/projects", headers=auth).json()["projects"]] == [shop]
        assert c.get("/v1/projects").status_code == 401
        for path, params in [
            ("/v1/events/s2-13", {"project_id": "other"}),
            ("/v1/sessions/s2/timeline", {"project_id": "other"}),
            ("/v1/projects/other/sessions", {}),
        ]:
            assert c.get(path, params=params, headers=auth).status_code == 403, path


def test_the_client_lists_and_reads(live_url, shop):
    with Client(live_url) as c:
        assert shop in {p.project_id for p in c.projects().projects}
        assert [s.session_id for s in c.all_sessions(shop, limit=1)] == ["s3", "s2", "s1"]
        assert c.event(shop, "s2-13").payload == {"exit_code": 1, "cmd": "pytest"}
        t = c.timeline(shop, "s2", "s2-13", before=1, after=1)
        assert [e.id for e in t.events] == ["s2-12", "s2-13", "s2-14"]
        with pytest.raises(NotFound):
            c.event(shop, "nope")


def _cli(settings, *args: str):
    r = CliRunner().invoke(main, list(args), env={"CTXSEARCH_DATA_DIR": str(settings.data_dir)})
    return r


def test_cli_projects_sessions_show_timeline(settings, shop):
    r = _cli(settings, "projects", "--json")
    assert r.exit_code == 0, r.output
    assert any(json.loads(line)["project_id"] == shop for line in r.stdout.splitlines())
    r = _cli(settings, "sessions", shop, "--limit", "2", "--json")
    *rows, end = [json.loads(line) for line in r.stdout.splitlines()]
    assert [s["session_id"] for s in rows] == ["s3", "s2"] and end["next_cursor"]
    r = _cli(settings, "sessions", shop, "--cursor", end["next_cursor"])
    assert r.exit_code == 0 and "s1" in r.stdout and "1 errors" not in r.stdout
    r = _cli(settings, "show", "s2-13", "--project", shop)
    assert r.exit_code == 0 and TRACEBACK in r.stdout and '"exit_code": 1' in r.stdout
    r = _cli(settings, "timeline", "s2", "--project", shop, "--around", "s2-13", "--before", "1", "--after", "0")
    assert r.exit_code == 0 and ">    3" in r.stdout and "s2-12" in r.stdout and "s2-14" not in r.stdout


def test_cli_refusals_exit_2_with_a_message(settings, shop):
    r = _cli(settings, "show", "nope", "--project", shop)
    assert r.exit_code == 2 and "no event 'nope'" in r.output
    r = _cli(settings, "sessions", shop.upper())
    assert r.exit_code == 2 and f"did you mean '{shop}'" in r.output
    r = _cli(settings, "search", "checkout", "--project", shop.upper())
    assert r.exit_code == 2 and f"did you mean '{shop}'" in r.output
    r = _cli(settings, "sessions", shop, "--cursor", "forged")
    assert r.exit_code == 2 and "cursor" in r.output
