"""Database access: the embedded server, the connection pool and migrations."""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

from ctxsearch.config import Settings
from ctxsearch.store.migrations import MissingExtension as MissingExtension  # re-exported: callers catch it here
from ctxsearch.store.migrations import migrate

log = logging.getLogger(__name__)


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL cannot be reached; callers answer 503."""


class DiskFull(RuntimeError):
    """PostgreSQL could not write: its disk is full. Callers answer 507; reads still work."""


# A statement that lost a lock cycle or a serialization check: its transaction stored nothing,
# and the server is up (the caller may retry; the pool is not marked down).
LOST_LOCK = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure, psycopg.errors.TransactionRollback)

DISK_FULL_MESSAGE = "disk full: the database cannot store anything more until space is freed on its volume"
# After a write failed for want of space, /readyz says so for this long (or until a write succeeds).
DISK_FULL_REPORT_S = 300.0


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL in data_dir and return its URI.

    pgserver keeps one server per data dir and counts the processes that use it,
    so `ctxsearch serve` and `ctxsearch mcp` can share one data dir.
    """
    import pgserver

    pgdata = (Path(data_dir) / "pgdata").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(pgdata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    with _embedded_lock:
        entry = _embedded.setdefault(pgdata, [server, 0])
        entry[1] += 1
    _tune_embedded(server.get_uri())
    return server.get_uri()


# pgdata -> [server handle, users in this process]
_embedded: dict[Path, list] = {}
_embedded_lock = threading.Lock()


def release_embedded(data_dir: Path) -> None:
    """Let go of the embedded server; the last user (in every process) stops it.

    Done on close rather than left to pgserver's atexit hook, which never runs when
    uvicorn re-raises SIGTERM after a graceful shutdown.
    """
    pgdata = (Path(data_dir) / "pgdata").resolve()
    with _embedded_lock:
        entry = _embedded.get(pgdata)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _embedded[pgdata]
    entry[0]._cleanup()


def embedded_running(data_dir: Path) -> bool:
    """Whether the embedded server's postmaster (by its pid file) is alive."""
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata((Path(data_dir) / "pgdata").resolve())
    return info is not None and info.is_running()


def restart_embedded(data_dir: Path) -> bool:
    """Start the embedded server again if its postmaster died (killed, crashed, stopped):
    PostgreSQL recovers from its WAL on start. True when this call started it. Several
    processes sharing the data dir may call it at once: pgserver's lock lets one start it."""
    from pgserver.postgres_server import PostgresServer

    pgdata = (Path(data_dir) / "pgdata").resolve()
    with _embedded_lock:
        entry = _embedded.get(pgdata)
    if entry is None:
        return False  # not ours (closed, or never started here)
    with PostgresServer._lock:
        if embedded_running(data_dir):
            return False
        entry[0].ensure_postgres_running()
    return True


def _forget_dead_handles(pgdata: Path) -> None:
    # pgserver counts the processes using a server in .handle_pids.json and stops it when
    # the last one exits. A process killed with SIGKILL never removes itself, and the
    # server would then outlive every later user.
    import psutil
    from pgserver.postgres_server import PostgresServer

    path = pgdata / ".handle_pids.json"
    if not path.exists():
        return
    with PostgresServer._lock:
        try:
            pids = json.loads(path.read_text())
        except ValueError:
            return
        alive = [p for p in pids if psutil.pid_exists(p)]
        if alive != pids:
            path.write_text(json.dumps(alive))


def _tune_embedded(uri: str) -> None:
    # Settings that need no restart; the defaults are sized for much smaller machines.
    with psycopg.connect(uri, autocommit=True) as conn:
        for name, value in (
            ("work_mem", "32MB"),
            ("maintenance_work_mem", "1GB"),
            ("effective_cache_size", "8GB"),
            ("random_page_cost", "1.1"),
            ("jit", "off"),
        ):
            current = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]
            if current != value:
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                conn.execute("SELECT pg_reload_conf()")


def resolve_database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.data_dir)


def safe_url(url: str) -> str:
    """The server as `user@host:port/dbname`, without the password: fit for logs and messages.

    Parsed by libpq's own rules (URLs and `key=value` strings alike), so a password can
    hide in neither form; anything unparseable is not echoed at all.
    """
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:
        return "<unparseable database URL>"
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    db = f"/{info['dbname']}" if info.get("dbname") else ""
    masked = ":***" if info.get("password") else ""
    return f"postgresql://{user.rstrip('@')}{masked}{'@' if user else ''}{info.get('host') or 'localhost'}{port}{db}"


class Database:
    """A pool of connections with pgvector registered on each."""

    def __init__(self, url: str, settings: Settings, embedded_dir: Path | None = None):
        self.url = url
        self.settings = settings
        self.embedded_dir = embedded_dir  # set when this pool uses the embedded server
        self._down = False
        self.disk_full_at: float | None = None  # monotonic time of the last write refused for space
        self.pool = ConnectionPool(
            url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.pool_timeout_s,
            configure=self._configure,
            reset=self._reset,
            # Test each connection as it is handed out, so that after a database restart
            # the first requests get a fresh connection rather than a dead one.
            check=ConnectionPool.check_connection,
            kwargs={"application_name": "ctxsearch", "autocommit": True},
            open=False,
        )

    def _configure(self, conn: psycopg.Connection) -> None:
        register_vector(conn)
        conn.execute(self._session_settings())

    def _session_settings(self) -> str:
        # Plans are made for the actual project: a big project's partial ANN index, or an
        # exact scan of a small project's rows (a generic plan would know neither).
        # Search-time ANN settings, per connection (pgvector's defaults favour speed over recall).
        # One string (integers from validated settings), so that a reset costs one round trip.
        return (
            "SET plan_cache_mode = force_custom_plan;"
            f" SET ivfflat.probes = {int(self.settings.ivfflat_probes)};"
            f" SET hnsw.ef_search = {int(self.settings.hnsw_ef_search)}"
        )

    def _reset(self, conn: psycopg.Connection) -> None:
        # On the way back into the pool (in the pool's worker thread, not the caller's): no
        # session state from one use reaches the next: settings back to the server's and
        # then ours, and no session-level advisory lock left held.
        conn.execute("RESET ALL; SELECT pg_advisory_unlock_all(); " + self._session_settings())

    def open(self) -> None:
        self.pool.open(wait=False)

    def close(self) -> None:
        self.pool.close()
        if self.embedded_dir is not None:
            release_embedded(self.embedded_dir)
            self.embedded_dir = None

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """A pooled connection; DatabaseUnavailable when none comes within timeout (default
        pool_timeout_s, or at most 1 s while the database is known to be down, so that callers
        hear 503 quickly during an outage)."""
        if timeout is None:
            timeout = min(1.0, self.settings.pool_timeout_s) if self._down else self.settings.pool_timeout_s
        try:
            with self.pool.connection(timeout=timeout) as conn:
                self._down = False
                yield conn
        except psycopg.errors.DiskFull as exc:
            # The server answers; it could not write (no internal path goes to the caller).
            self.disk_full_at = time.monotonic()
            log.error("database write failed: %s", _first_line(exc))
            raise DiskFull(DISK_FULL_MESSAGE) from exc
        except LOST_LOCK:
            raise  # a deadlock or serialization failure: this statement lost, the server is up
        except psycopg.OperationalError as exc:
            # A broken connection is discarded by the pool; the next one is fresh.
            self._down = True
            raise DatabaseUnavailable(f"database unavailable: {_first_line(exc)}") from exc
        except Exception as exc:
            from psycopg_pool import PoolTimeout

            if isinstance(exc, PoolTimeout):
                self._down = True
                raise DatabaseUnavailable(
                    f"database unavailable: no connection to PostgreSQL within {timeout:g} s"
                ) from exc
            raise

    def writes_failing(self) -> str | None:
        """Why writes fail now, if they recently did for want of disk space."""
        if self.disk_full_at is not None and time.monotonic() - self.disk_full_at < DISK_FULL_REPORT_S:
            return DISK_FULL_MESSAGE
        return None

    def wrote(self) -> None:
        """A write succeeded: whatever filled the disk has been dealt with."""
        self.disk_full_at = None

    def ping(self) -> bool:
        try:
            with self.connection() as conn:
                conn.execute("SELECT 1")
            return True
        except DatabaseUnavailable:
            return False


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def connect_database(settings: Settings) -> Database:
    """Resolve the server (embedded or URL), apply migrations and open a pool."""
    url = resolve_database_url(settings)
    log.info("database: %s", "embedded in " + str(settings.pgdata) if not settings.database_url else safe_url(url))
    db = Database(url, settings, embedded_dir=None if settings.database_url else settings.data_dir)
    try:
        migrate(url)
    except BaseException:
        db.close()
        raise
    db.open()
    return db
