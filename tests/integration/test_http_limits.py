"""What one client may hold of the server (ctxsearch.http.server), through a real socket: a huge
header is refused as it arrives while others are served, a request head trickled byte by byte
is cut off, a stalled body gets 408, and failed authentications are throttled per address."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from ctxsearch.http.app import create_app
from tests.conftest import serving


@pytest.fixture(scope="module")
def tight(settings, service):
    s = settings.model_copy(update={"header_timeout_s": 1.0, "body_timeout_s": 1.0})
    with serving(create_app(s, service=service), s) as url:
        yield url


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def test_a_huge_header_is_refused_as_it_arrives_and_others_are_served(tight):
    """A client streaming a 64 MiB header is answered 400 once it passes max_header_bytes;
    meanwhile /healthz keeps answering at once."""
    result: dict = {}

    def flood() -> None:
        with socket.create_connection(_address(tight), timeout=30) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * (1 << 20)
            try:
                for _ in range(64):
                    s.sendall(chunk)
            except OSError:
                result["cut"] = True  # the server closed the connection mid-stream
            try:
                result["answer"] = s.recv(200)
            except OSError:
                result.setdefault("answer", b"")

    thread = threading.Thread(target=flood)
    t0 = time.monotonic()
    thread.start()
    slowest = 0.0
    while thread.is_alive() and time.monotonic() - t0 < 30:
        t = time.monotonic()
        assert httpx.get(f"{tight}/healthz", timeout=5).status_code == 200
        slowest = max(slowest, time.monotonic() - t)
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - t0 < 30
    assert result.get("cut") or result["answer"].startswith(b"HTTP/1.1 400"), result
    assert slowest < 1.0


def test_a_trickled_request_head_is_cut_off(tight):
    with socket.create_connection(_address(tight), timeout=10) as s:
        t0 = time.monotonic()
        closed_after = None
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - t0
                break
            time.sleep(0.1)
            s.settimeout(0.01)
            try:
                if s.recv(1) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except TimeoutError:
                pass
        assert closed_after is not None and 0.9 < closed_after < 3.0, closed_after


def test_a_complete_head_is_not_cut_off_however_slow_the_answer(tight):
    """The deadline covers the head only: keep-alive requests one after another all answer."""
    with httpx.Client(base_url=tight) as c:
        for _ in range(3):
            assert c.get("/healthz").status_code == 200
            time.sleep(0.6)  # more than half the head deadline between requests, less than keep-alive


def test_a_stalled_body_gets_408(tight):
    with socket.create_connection(_address(tight), timeout=10) as s:
        s.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"events": ['
        )
        t0 = time.monotonic()
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"body_timeout_s" in answer and time.monotonic() - t0 < 5


def test_failed_authentications_are_throttled_per_address(settings, service):
    s = settings.model_copy(
        update={"api_keys": {"right-key-0123456789abcdef": ["*"]}, "auth_failures_burst": 5, "auth_failures_per_s": 0.5}
    )
    with serving(create_app(s, service=service), s) as url, httpx.Client(base_url=url) as c:
        codes = [c.get("/v1/projects", headers={"Authorization": "Bearer nope"}).status_code for _ in range(8)]
        assert codes[:5] == [401] * 5 and codes[5:] == [429] * 3, codes
        r = c.get("/v1/projects", headers={"Authorization": "Bearer right-key-0123456789abcdef"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # even a right key waits
        time.sleep(2.1)  # one token back
        r = c.get("/v1/projects", headers={"Authorization": "Bearer right-key-0123456789abcdef"})
        assert r.status_code == 200
