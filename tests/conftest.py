"""One embedded PostgreSQL with pgvector and the real model for the whole run; each test
works in a project of its own."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ctxsearch.config import Settings  # noqa: E402
from ctxsearch.http.app import create_app  # noqa: E402
from ctxsearch.service.facade import Service  # noqa: E402


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


def _data_dir() -> Path:
    # Not under pytest's basetemp: every pytest run started as the same user resets that
    # folder to mode 0700, which locks out the embedded server's own OS user mid-run.
    path = Path(tempfile.mkdtemp(prefix="ctxsearch-test-"))
    # atexit runs last-in first-out: registered before the server starts, this runs after it stops.
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@pytest.fixture(scope="session")
def settings() -> Settings:
    base = dict(data_dir=_data_dir(), refresh_interval_s=3600, worker_poll_s=0.2)
    if os.environ.get("CTXSEARCH_TEST_DB") == "docker":
        # Opt-in: a throwaway pgvector/pgvector container (needs a Docker engine).
        if not _docker_available():
            pytest.skip("CTXSEARCH_TEST_DB=docker but no Docker engine is reachable")
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("pgvector/pgvector:pg16", driver=None)
        container.start()
        base["database_url"] = container.get_connection_url()
    return Settings(**base)


@pytest.fixture(scope="session")
def service(settings) -> Service:
    svc = Service.start(settings, run_worker=True)
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def client(settings, service) -> TestClient:
    with TestClient(create_app(settings, service=service)) as c:
        yield c


@contextmanager
def serving(app, settings: Settings | None = None) -> Iterator[str]:
    """Serve an app with a real uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from ctxsearch.http.server import server_config

    config = server_config(app, settings or Settings(), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def live_url(settings, service) -> str:
    """The app served by a real uvicorn (HTTP clients, MCP over HTTP)."""
    with serving(create_app(settings, service=service)) as url:
        yield url


@pytest.fixture
def own_data_dir() -> Path:
    """A data dir for a PostgreSQL of the test's own, outside pytest's temp root: pytest
    resets that root to 0700, which locks out the `pgserver` user that runs postgres as root."""
    path = Path(tempfile.mkdtemp(prefix="ctxsearch-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def project() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def event(project: str, session: str, n: int, type_: str = "note", content: str = "", **extra) -> dict:
    """An event dict as a client would send it; n orders timestamps within the session."""
    return {
        "id": extra.pop("id", f"{session}-{n}"),
        "project_id": project,
        "session_id": session,
        "timestamp": extra.pop("timestamp", f"2026-11-20T10:{n // 60:02d}:{n % 60:02d}Z"),
        "type": type_,
        "content": content,
        **extra,
    }


@pytest.fixture
def wait_indexed(client) -> Callable[[str, float], dict]:
    """Block until the project has nothing pending (every document embedded, every session condensed)."""

    def wait(project: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            stats = client.get(f"/v1/projects/{project}/stats").json()
            if stats["pending"] == 0:
                return stats
            if time.monotonic() > deadline:
                raise AssertionError(f"project {project} still pending after {timeout}s: {stats}")
            time.sleep(0.1)

    return wait


@pytest.fixture
def search(client) -> Callable[..., list[dict]]:
    def run(project: str, query: str, **params) -> list[dict]:
        r = client.post("/v1/search", json={"query": query, "project_id": project, **params})
        assert r.status_code == 200, r.text
        return r.json()["results"]

    return run
