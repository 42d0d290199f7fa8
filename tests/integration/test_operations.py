"""Health, migrations, a database that is down, and the CLI."""

from __future__ import annotations

import json

from click.testing import CliRunner
from fastapi.testclient import TestClient

from ctxsearch.cli.main import main
from ctxsearch.config import Settings
from ctxsearch.http.app import create_app
from ctxsearch.service.facade import Service
from ctxsearch.store.db import Database
from ctxsearch.store.migrations import migrate
from tests.conftest import event


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_migrations_are_recorded_and_applied_once(service):
    assert migrate(service.db.url) == []
    with service.db.connection() as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions[0] == "0001_baseline" and versions == sorted(versions)


def test_database_down_gives_503_not_a_traceback(service):
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none", pool_timeout_s=1.0, run_worker=False)
    db = Database(settings.database_url, settings)
    db.open()
    down = Service(settings, db, service.embedder)
    try:
        with TestClient(create_app(settings, service=down), raise_server_exceptions=False) as c:
            r = c.post("/v1/events", json={"events": [event("p", "s", 1, content="x")]})
            assert r.status_code == 503
            assert "database unavailable" in r.json()["error"]
            r = c.post("/v1/search", json={"query": "x", "project_id": "p"})
            assert r.status_code == 503
            assert c.get("/healthz").status_code == 200  # liveness: the process is up
            r = c.get("/readyz")
            assert r.status_code == 503 and "database unavailable" in r.json()["error"]
    finally:
        db.close()


def test_cli_ingest_and_search(settings, service, project, tmp_path):
    lines = [
        event(project, "cli", 1, "decision", "Adopt ruff for linting and drop flake8", id="c1"),
        event(project, "cli", 2, "error", "mypy: Incompatible return value type in load_config", id="c2"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    runner = CliRunner()
    env = {"CTXSEARCH_DATA_DIR": str(settings.data_dir)}
    r = runner.invoke(main, ["ingest", str(path), "--json"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1]) == {"accepted": 2, "duplicates": 0}

    r = runner.invoke(main, ["search", "which linter did we adopt", "--project", project, "--json"], env=env)
    assert r.exit_code == 0, r.output
    hits = [json.loads(line) for line in r.output.strip().splitlines() if line.startswith("{")]
    assert hits[0]["id"] == "c1"

    r = runner.invoke(main, ["search", "load_config", "--project", project, "--mode", "text"], env=env)
    assert r.exit_code == 0 and "c2" in r.output


def test_cli_bad_input_exits_2_with_a_message(settings, tmp_path):
    env = {"CTXSEARCH_DATA_DIR": str(settings.data_dir)}
    runner = CliRunner()
    r = runner.invoke(main, ["search", "x", "--project", "p", "--since", "nope"], env=env)
    assert r.exit_code == 2 and "since" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"project_id": "p"}\n')
    r = runner.invoke(main, ["ingest", str(bad)], env=env)
    assert r.exit_code == 2 and "bad.jsonl:1" in r.output and "session_id" in r.output
    r = runner.invoke(main, ["search", "--help"])
    assert r.exit_code == 0 and "Search a project" in r.output


def test_cli_ingest_says_which_lines_were_stored_or_with_atomic_stores_none(settings, service, tmp_path, project):
    env = {"CTXSEARCH_DATA_DIR": str(settings.data_dir)}
    runner = CliRunner()
    lines = [json.dumps(event(project, "bulk", n, "note", f"bulk line {n}")) for n in range(1, 8)]
    lines[5] = json.dumps({**json.loads(lines[5]), "type": "bogus"})  # line 6 is bad
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")

    r = runner.invoke(main, ["ingest", str(path), "--atomic", "--no-wait"], env=env)
    assert r.exit_code == 2 and "events.jsonl:6: type" in r.output and "nothing was stored" in r.output
    assert service.stats(project).events == 0

    r = runner.invoke(main, ["ingest", str(path), "--batch-size", "2", "--no-wait"], env=env)
    assert r.exit_code == 2 and "events.jsonl:6: type" in r.output, r.output
    assert "lines 1-4 were stored (accepted 4, duplicates 0) and none from line 5 on" in r.output
    assert service.stats(project).events == 4

    lines[5] = json.dumps(event(project, "bulk", 6, "note", "bulk line 6"))
    path.write_text("\n".join(lines) + "\n")
    r = runner.invoke(main, ["ingest", str(path), "--json", "--no-wait"], env=env)
    assert r.exit_code == 0 and json.loads(r.output.strip().splitlines()[-1]) == {"accepted": 3, "duplicates": 4}
