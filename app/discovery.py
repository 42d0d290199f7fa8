"""How local commands find a `ctxsearch serve` running on the same data dir: serve writes
`<data dir>/server.json` (its URL and pid) while it runs, and the importers and the hook
send to it over HTTP instead of starting a second embedded PostgreSQL and model."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER_FILE = "server.json"


def local_url(host: str, port: int) -> str:
    # A server bound to every address is reached on loopback from this machine.
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextmanager
def announce(data_dir: Path, url: str) -> Iterator[None]:
    """Advertise a running server in its data dir until the block ends."""
    path = Path(data_dir) / SERVER_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{SERVER_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        os.replace(tmp, path)
    except OSError:
        path = None  # a read-only data dir: nothing to advertise, nothing breaks
    try:
        yield
    finally:
        if path is not None:
            try:
                if json.loads(path.read_text()).get("pid") == os.getpid():
                    path.unlink()
            except (OSError, ValueError):
                pass


def running_server(data_dir: Path, timeout_s: float = 0.5) -> str | None:
    """The URL of a live `ctxsearch serve` on this data dir, or None."""
    try:
        info = json.loads((Path(data_dir) / SERVER_FILE).read_text())
        url, pid = str(info["url"]), int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout_s) as r:
            return url if r.status == 200 else None
    except (OSError, urllib.error.URLError, ValueError):
        return None
