"""Prometheus metrics, JSON logs with request ids, and the deployment files."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ctxsearch.auth import key_fingerprint
from ctxsearch.http.app import create_app
from ctxsearch.http.observability import JsonFormatter
from tests.conftest import event

ROOT = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_metrics_cover_requests_ingest_queue_and_search(settings, service, project, wait_indexed):
    with TestClient(create_app(settings, service=service)) as c:
        batch = {"events": [event(project, "m", n, "error", f"timeout talking to redis {n}") for n in range(3)]}
        assert c.post("/v1/events", json=batch).status_code == 202
        assert c.post("/v1/events", json=batch).json()["duplicates"] == 3
        wait_indexed(project)
        for mode in ("hybrid", "text"):
            assert c.post("/v1/search", json={"query": "redis", "project_id": project, "mode": mode}).status_code == 200
        assert c.get("/v1/projects/nope/stats").status_code == 200
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = samples(r.text)
    assert m[("ctxsearch_events_ingested_total", ())] == 3
    assert m[("ctxsearch_events_duplicate_total", ())] == 3
    for mode in ("hybrid", "text"):
        assert m[("ctxsearch_search_duration_seconds_count", (("mode", mode),))] == 1
    # Latency by route template, not by raw path (bounded label values).
    key = (
        "ctxsearch_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/v1/projects/{project_id}/stats"), ("status", "200")),
    )
    assert m[key] >= 1
    assert not any("nope" in str(labels) for _, labels in m)
    assert m[("ctxsearch_database_up", ())] == 1
    for gauge in ("ctxsearch_pending_documents", "ctxsearch_dirty_sessions", "ctxsearch_freshness_lag_seconds"):
        assert m[(gauge, ())] >= 0


def test_access_log_is_json_with_request_id_and_no_key(settings, service, caplog):
    key = "very-secret-key-0123456789"
    s = settings.model_copy(update={"api_keys": {key: ["*"]}})
    with TestClient(create_app(s, service=service)) as c, caplog.at_level(logging.INFO, "ctxsearch.access"):
        c.get("/v1/projects/p/stats", headers={"Authorization": f"Bearer {key}", "X-Request-ID": "req-42"})
    records = [r for r in caplog.records if r.name == "ctxsearch.access"]
    line = json.loads(JsonFormatter().format(records[-1]))
    assert line["request_id"] == "req-42" and line["route"] == "/v1/projects/{project_id}/stats"
    assert line["status"] == 200 and line["level"] == "INFO" and len(line["key_id"]) == 8
    assert key not in caplog.text and key not in json.dumps(line)
    # The label is a slow, salted hash: not the plain SHA-256 a short key is guessed from.
    assert line["key_id"] == key_fingerprint(key)
    assert line["key_id"] != hashlib.sha256(key.encode()).hexdigest()[:8]


def test_compose_file_runs_postgres_api_and_worker_with_health_checks():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("pgvector/pgvector:")
    assert "--no-worker" in services["api"]["command"] and "worker" in services["worker"]["command"]
    for name in ("db", "api", "worker"):
        assert "healthcheck" in services[name], name
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["CTXSEARCH_DATABASE_URL"].startswith("postgresql://")
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy"
    assert "readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert any(v.split(":")[0] in compose["volumes"] for v in services["db"]["volumes"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "torch==2.13.0" in dockerfile and "HEALTHCHECK" in dockerfile
