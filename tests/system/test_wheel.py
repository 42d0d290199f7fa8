"""The built wheel is the product: installed on its own (not from the checkout), it carries
its migrations and can migrate, serve, ingest and search on the embedded default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from ctxsearch.bench.runner import stop_process, wait_for_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("ctxsearch-*.whl")
    return path


def test_wheel_holds_one_package_with_its_migrations(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"ctxsearch"}, tops
    assert any(n.startswith("ctxsearch/sql/") and n.endswith(".sql") for n in names)
    assert "ctxsearch/client/__init__.py" in names and "ctxsearch/embeddings/model.py" in names
    # The web page: its templates and static files, as the routes load them (ctxsearch.web.routes).
    for name in ("templates/shell.html", "templates/search.html", "templates/session.html", "templates/event.html"):
        assert f"ctxsearch/web/{name}" in names, name
    for name in ("app.js", "app.css", "favicon.svg"):
        assert f"ctxsearch/web/static/{name}" in names, name


def test_installed_wheel_migrates_serves_ingests_and_searches(wheel, tmp_path, own_data_dir):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    # Only the installed copy is importable as ctxsearch: it comes first on the path, and the
    # commands run outside the checkout.
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "HF_HUB_OFFLINE": "1",
        "CTXSEARCH_LOG_LEVEL": "WARNING",
        "CTXSEARCH_DATA_DIR": str(own_data_dir),
    }
    env.pop("CTXSEARCH_DATABASE_URL", None)
    where = subprocess.run(
        [sys.executable, "-c", "import ctxsearch; print(ctxsearch.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(target), where

    migrated = subprocess.run(
        [sys.executable, "-m", "ctxsearch", "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrated.returncode == 0, migrated.stderr

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "ctxsearch", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, server, lambda: log.read_text()[-3000:], timeout=180)
        event = {
            "id": "w1",
            "project_id": "wheel",
            "session_id": "s1",
            "timestamp": "2026-11-20T10:00:00Z",
            "type": "error",
            "content": "KeyError: 'tenant_slug' in resolve_tenant_from_subdomain",
        }
        r = httpx.post(f"{url}/v1/events", json={"events": [event]}, timeout=30)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/v1/projects/wheel/stats", timeout=30).json()["pending"] and time.monotonic() < deadline:
            time.sleep(0.2)
        for mode in ("text", "vector", "hybrid"):
            hits = httpx.post(
                f"{url}/v1/search",
                json={"query": "tenant lookup fails for subdomain", "project_id": "wheel", "mode": mode},
                timeout=30,
            ).json()
            assert [h["id"] for h in hits["results"]][:1] == ["w1"], (mode, json.dumps(hits)[:500])
        # The web page from the installed package: the layout, its script and a view.
        page = httpx.get(f"{url}/", timeout=30)
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert httpx.get(f"{url}/static/app.js", timeout=30).status_code == 200
        view = httpx.get(f"{url}/ui/projects/wheel/events/w1", timeout=30)
        assert view.status_code == 200 and "resolve_tenant_from_subdomain" in view.text
    finally:
        stop_process(server)
