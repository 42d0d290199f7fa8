"""`ctxsearch bench --soak MINUTES`: mixed ingest and search at a set rate, with faults.

Against a `ctxsearch serve` of its own (a scratch data dir, its embedded PostgreSQL, the
embed worker on), seeded with a corpus of `seed_docs` events:

- `clients` threads send requests paced by one token bucket at `rate` requests/s in all:
  about 70% hybrid searches over the seeded projects, 30% ingest batches of 1-20 new events;
  a 503 is honoured by sleeping its Retry-After;
- at evenly spaced times the embedded postmaster is killed with SIGKILL (the server's
  watchdog starts it again; the seconds until /readyz answers 200 with a new postmaster are
  the fault's recovery time), and between the kills a warm-tier rebuild is forced;
- every `window_s` the server process's RSS and the PostgreSQL processes' PSS are sampled,
  and the requests of that window are summed up (statuses, admitted search p50/p99);
- at the end the embed queue is drained and every event whose batch was answered 202 is
  looked up in the database: `events_lost` counts those missing.

A 503 (shed: "service busy", or the database unavailable during a fault) is expected and
counted; any other 5xx, a timeout or a refused connection is a failure, as are lost events, a
recovery slower than `recovery_limit_s` and a queue that does not drain.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from ctxsearch.bench.corpus import CorpusGenerator
from ctxsearch.bench.runner import USER_DATA_ENV, stop_process, wait_for_server

SEARCH_SHARE = 0.7
SEED_BATCH = 250
REBUILD_WAIT_S = 120.0  # a forced rebuild's wait for the rebuild lock, the database, the swap's locks


@dataclass
class SoakOptions:
    minutes: float
    clients: int = 8
    rate: float = 20.0  # requests/s, all clients together
    kills: int = 2
    rebuilds: int = 2
    seed_docs: int = 2000
    window_s: float = 10.0
    timeout_s: float = 15.0  # a request unanswered this long is a timeout
    recovery_limit_s: float = 10.0
    drain_timeout_s: float = 300.0
    data_dir: Path | None = None
    keep: bool = False
    settings: dict = field(default_factory=dict)  # CTXSEARCH_ overrides for the server under test


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values), q)), 1) if values else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TokenBucket:
    """`rate` tokens/s, at most `burst` saved up: the clients together never exceed the rate,
    and a client back from a Retry-After does not make up for lost time."""

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = 1.0
        self.t = time.monotonic()
        self.lock = threading.Lock()

    def take(self, stop: threading.Event) -> bool:
        while not stop.is_set():
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
                self.t = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return True
                wait = (1 - self.tokens) / self.rate
            stop.wait(wait)
        return False


def _status(r: httpx.Response) -> str:
    """The status as counted: 503s split into shed (a bound on concurrent work) and unavailable."""
    if r.status_code != 503:
        return str(r.status_code)
    try:
        error = r.json().get("error", "")
    except ValueError:
        error = ""
    return "503 shed" if error.startswith("service busy") else "503 unavailable"


class Soak:
    def __init__(self, opts: SoakOptions, log: Callable[[str], None] = print):
        self.o = opts
        self.log = log
        self.own_dir = opts.data_dir is None
        self.data_dir = Path(opts.data_dir or tempfile.mkdtemp(prefix="ctxsearch-soak-", dir="/tmp")).resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.records: list[tuple[float, str, str, float]] = []  # (t, kind, status, latency ms)
        self.acked: dict[str, set[str]] = {}  # project -> event ids answered 202
        self.acked_lock = threading.Lock()
        self.stop = threading.Event()
        self.t0 = 0.0
        self.faults: list[dict] = []
        self.samples: list[dict] = []
        self.errors: list[str] = []  # the first few failures, for the report

    # -- the server under test ---------------------------------------------------------
    def start_server(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in USER_DATA_ENV}
        env |= {"HF_HUB_OFFLINE": "1", "CTXSEARCH_LOG_LEVEL": "WARNING"}
        if "CTXSEARCH_MODEL_CACHE_DIR" not in env:
            # Keep the ONNX export across runs: the soak's data dir is thrown away.
            import platformdirs

            env["CTXSEARCH_MODEL_CACHE_DIR"] = str(Path(platformdirs.user_cache_dir("ctxsearch")) / "models")
        for name, value in self.o.settings.items():
            if value is not None:
                env[f"CTXSEARCH_{name.upper()}"] = str(value)
        self.log_path = self.data_dir / "serve.log"
        self._log = open(self.log_path, "w")
        # Started in the data dir: a .env in the caller's folder must not name another database.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ctxsearch", "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)],
            cwd=self.data_dir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        wait_for_server(self.url, self.proc, self.log_tail, path="/readyz")

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def database_url(self) -> str:
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None:
            raise RuntimeError(f"no postmaster.pid in {self.pgdata}")
        return info.get_uri()

    def close(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self._log.close()
        if self.own_dir and not self.o.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- seeding -------------------------------------------------------------------------
    def seed(self) -> dict[str, int]:
        """Post the seed corpus, wait until it is embedded, and build the warm tier over it."""
        gen = CorpusGenerator(self.o.seed_docs, seed=7, prefix="soak")
        events = [e.as_api() for e in gen.events(self.o.seed_docs)]
        t0 = time.perf_counter()
        with httpx.Client(base_url=self.url, timeout=120) as client:
            for i in range(0, len(events), SEED_BATCH):
                batch = events[i : i + SEED_BATCH]
                while True:
                    r = client.post("/v1/events", json={"events": batch})
                    if r.status_code != 503:
                        break
                    time.sleep(float(r.headers.get("Retry-After", 1)))
                if r.status_code != 202:
                    raise RuntimeError(f"seeding: {r.status_code} {r.text[:300]}")
                for e in batch:
                    self.acked.setdefault(e["project_id"], set()).add(e["id"])
            counts = {p: len(ids) for p, ids in self.acked.items()}
            self.wait_drained(client, list(counts), self.o.drain_timeout_s)
        self.rebuild()
        self.log(f"seeded {len(events)} events in {len(counts)} projects ({time.perf_counter() - t0:.1f} s)")
        return counts

    def wait_drained(self, client: httpx.Client, projects: list[str], timeout: float) -> bool:
        """Until no project has anything pending (embedding, condensing); False on timeout."""
        deadline = time.monotonic() + timeout
        left = list(projects)
        while left:
            try:
                r = client.get(f"/v1/projects/{left[0]}/stats")
                if r.status_code == 200 and r.json()["pending"] == 0:
                    left.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    # -- load ----------------------------------------------------------------------------
    def client_loop(self, n: int, bucket: TokenBucket, counts: dict[str, int]) -> None:
        gen = CorpusGenerator(self.o.seed_docs, seed=1000 + n, prefix="soak")
        rng = random.Random(n)
        projects = [p for p in gen.projects if counts.get(p.project_id)]
        weights = [counts[p.project_id] for p in projects]
        queries: list[tuple[str, str]] = []
        batch_no = 0
        with httpx.Client(base_url=self.url, timeout=self.o.timeout_s) as client:
            while bucket.take(self.stop):
                if rng.random() < SEARCH_SHARE:
                    if not queries:
                        queries = gen.queries(100, counts)
                    project, q = queries.pop()
                    kind, ids = "search", None
                    body = {"query": q, "project_id": project, "mode": "hybrid"}
                else:
                    batch_no += 1
                    p = rng.choices(projects, weights)[0]
                    sid = f"live-c{n:03d}-{batch_no:06d}"
                    files = rng.sample(p.files, min(4, len(p.files)))
                    now = datetime.now(UTC)
                    batch = [gen.event(p, sid, i, now, files).as_api() for i in range(rng.randint(1, 20))]
                    kind, ids, project = "ingest", [e["id"] for e in batch], p.project_id
                    body = {"events": batch}
                path = "/v1/search" if kind == "search" else "/v1/events"
                t = time.monotonic()
                retry_after = 0.0
                try:
                    r = client.post(path, json=body)
                    status = _status(r)
                    if r.status_code == 503:
                        retry_after = float(r.headers.get("Retry-After", 1))
                    elif r.status_code >= 500 and len(self.errors) < 20:
                        self.errors.append(f"{kind} {r.status_code}: {r.text[:300]}")
                except httpx.TimeoutException:
                    status = "timeout"
                except httpx.TransportError as exc:
                    status = "connection error"
                    if len(self.errors) < 20:
                        self.errors.append(f"{kind} {type(exc).__name__}: {exc}")
                latency = (time.monotonic() - t) * 1000
                self.records.append((t - self.t0, kind, status, latency))
                if status == "202":
                    with self.acked_lock:
                        self.acked.setdefault(project, set()).update(ids)
                if retry_after:
                    self.stop.wait(retry_after)

    # -- faults --------------------------------------------------------------------------
    def kill_postgres(self) -> dict:
        """SIGKILL the embedded postmaster; seconds until /readyz is 200 with a new one."""
        old = self.postmaster_pid()
        t = time.monotonic()
        fault = {"kind": "kill", "at_s": round(t - self.t0, 1), "old_pid": old, "new_pid": None, "recovery_s": None}
        if old is None:
            fault["error"] = "no postmaster.pid"
            return fault
        os.kill(old, signal.SIGKILL)
        deadline = t + 60
        with httpx.Client(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                pid = self.postmaster_pid()
                try:
                    ready = pid not in (None, old) and client.get("/readyz").status_code == 200
                except httpx.HTTPError:
                    ready = False
                if ready:
                    fault |= {"new_pid": pid, "recovery_s": round(time.monotonic() - t, 2)}
                    break
                time.sleep(0.1)
        return fault

    def rebuild(self) -> dict:
        """A warm-tier rebuild on a connection of the soak's own, as the worker runs it; a
        rebuild already running, or the database down, is waited out (at most REBUILD_WAIT_S)."""
        import psycopg

        from ctxsearch.config import Settings
        from ctxsearch.store.tiers import RebuildRunning, TierBusy, rebuild_warm

        t = time.monotonic()
        fault: dict = {"kind": "rebuild", "at_s": round(t - self.t0, 1) if self.t0 else None}
        deadline = t + REBUILD_WAIT_S
        while True:
            try:
                url = self.database_url()
                # The server's settings: it runs with no .env (in the data dir) and this environment.
                overrides = {k: v for k, v in self.o.settings.items() if v is not None}
                settings = Settings(_env_file=None, data_dir=self.data_dir, database_url=url, **overrides)
                with psycopg.connect(url, autocommit=True) as conn:
                    gen, _, rows, _ = rebuild_warm(conn=conn, settings=settings, lock_wait_s=REBUILD_WAIT_S)
                return fault | {"generation": gen, "rows": rows, "seconds": round(time.monotonic() - t, 2)}
            except TierBusy as exc:  # the swap found no gap between readers: the worker retries later
                return fault | {"error": f"TierBusy: {exc}", "seconds": round(time.monotonic() - t, 2)}
            except (RebuildRunning, psycopg.OperationalError, RuntimeError) as exc:
                if time.monotonic() > deadline:
                    return fault | {"error": f"{type(exc).__name__}: {exc}"}
                time.sleep(1)

    def _rebuild_fault(self) -> None:
        try:
            fault = self.rebuild()
        except Exception as exc:
            fault = {"kind": "rebuild", "at_s": round(time.monotonic() - self.t0, 1), "error": repr(exc)}
        self.faults.append(fault)
        if "error" in fault:
            self.log(f"fault: warm tier rebuild failed: {fault['error']}")
        else:
            self.log(f"fault: warm tier rebuilt ({fault['rows']} rows, {fault['seconds']} s)")

    def fault_loop(self, duration: float) -> None:
        """Kills and rebuilds alternate, evenly spread over the run; a rebuild runs beside the
        load (and a later kill) in a thread of its own."""
        order = []
        for i in range(max(self.o.kills, self.o.rebuilds)):
            order += ["kill"] * (i < self.o.kills) + ["rebuild"] * (i < self.o.rebuilds)
        rebuilds = []
        for i, kind in enumerate(order):
            if self.stop.wait(max(0.0, self.t0 + duration * (i + 1) / (len(order) + 1) - time.monotonic())):
                break
            if kind == "kill":
                fault = self.kill_postgres()
                self.faults.append(fault)
                self.log(f"fault: postmaster {fault['old_pid']} killed, ready again in {fault['recovery_s']} s")
            else:
                rebuilds.append(threading.Thread(target=self._rebuild_fault, name="soak-rebuild", daemon=True))
                rebuilds[-1].start()
        for t in rebuilds:
            t.join(2 * REBUILD_WAIT_S + 30)

    # -- samples -------------------------------------------------------------------------
    def memory(self) -> dict:
        import psutil

        out: dict = {"server_rss_mb": None, "postgres_pss_mb": None}
        try:
            out["server_rss_mb"] = round(psutil.Process(self.proc.pid).memory_info().rss / 2**20, 1)
        except psutil.Error:
            pass
        pid = self.postmaster_pid()
        try:
            pm = psutil.Process(pid) if pid else None
            procs = [pm, *pm.children()] if pm else []
        except psutil.Error:
            procs = []  # killed, or starting again
        total = 0
        for p in procs:
            try:
                info = p.memory_full_info()  # PSS: shared buffers counted once across the backends
                total += getattr(info, "pss", info.rss)
            except psutil.Error:
                pass
        out["postgres_pss_mb"] = round(total / 2**20, 1) if total else None
        return out

    def server_cpu_s(self) -> float:
        import psutil

        try:
            t = psutil.Process(self.proc.pid).cpu_times()
            return t.user + t.system
        except psutil.Error:
            return 0.0

    def sample_loop(self) -> None:
        k = 0
        while not self.stop.wait(max(0.0, self.t0 + (k + 1) * self.o.window_s - time.monotonic())):
            k += 1
            self.samples.append({"t_s": round(time.monotonic() - self.t0, 1), **self.memory()})

    # -- the run -------------------------------------------------------------------------
    def run(self) -> dict:
        self.start_server()
        counts = self.seed()
        seeded = sum(counts.values())
        duration = self.o.minutes * 60
        bucket = TokenBucket(self.o.rate, burst=self.o.clients)
        self.t0 = time.monotonic()
        baseline = self.memory() | {"client_cpu_s": time.process_time(), "server_cpu_s": self.server_cpu_s()}
        threads = [
            threading.Thread(target=self.client_loop, args=(n, bucket, counts), name=f"soak-client-{n}", daemon=True)
            for n in range(self.o.clients)
        ]
        threads += [
            threading.Thread(target=self.fault_loop, args=(duration,), name="soak-faults", daemon=True),
            threading.Thread(target=self.sample_loop, name="soak-samples", daemon=True),
        ]
        for t in threads:
            t.start()
        self.log(
            f"soak: {self.o.minutes:g} min, {self.o.clients} clients, {self.o.rate:g} requests/s, "
            f"{self.o.kills} kills, {self.o.rebuilds} rebuilds"
        )
        self.stop.wait(duration)
        self.stop.set()
        for t in threads:
            # A client's last request; a kill's recovery wait; a rebuild in progress.
            t.join(self.o.timeout_s + 2 * REBUILD_WAIT_S + 60)
        load_s = time.monotonic() - self.t0
        # What the load cost: this process (the clients) and the API process, in CPU seconds.
        baseline["client_cpu_s"] = round(time.process_time() - baseline["client_cpu_s"], 1)
        baseline["server_cpu_s"] = round(self.server_cpu_s() - baseline["server_cpu_s"], 1)
        self.samples.append({"t_s": round(load_s, 1), **self.memory()})  # the end of the last window
        server_alive = self.proc.poll() is None
        with httpx.Client(base_url=self.url, timeout=10) as client:
            t = time.monotonic()
            drained = server_alive and self.wait_drained(client, list(self.acked), self.o.drain_timeout_s)
            drain_s = time.monotonic() - t
        lost, acked = self.verify() if server_alive else (None, sum(len(v) for v in self.acked.values()))
        return self.report(load_s, seeded, acked, lost, drained, drain_s, server_alive, baseline)

    def verify(self) -> tuple[int, int]:
        """(events lost, events acknowledged): every id answered 202 looked up in the database."""
        import psycopg

        lost = acked = 0
        with psycopg.connect(self.database_url()) as conn:
            for project, ids in self.acked.items():
                stored = {
                    r[0]
                    for r in conn.execute(
                        "SELECT event_id FROM events WHERE project_id = %s AND event_id = ANY(%s)", (project, list(ids))
                    )
                }
                acked += len(ids)
                missing = ids - stored
                lost += len(missing)
                if missing and len(self.errors) < 20:
                    self.errors.append(
                        f"{len(missing)} acknowledged events missing in {project}: {sorted(missing)[:5]}"
                    )
        return lost, acked

    def report(
        self,
        load_s: float,
        seeded: int,
        acked: int,
        lost: int | None,
        drained: bool,
        drain_s: float,
        server_alive: bool,
        baseline: dict,
    ) -> dict:
        recs = list(self.records)
        by_kind: dict[str, Counter] = {"search": Counter(), "ingest": Counter()}
        for _, kind, status, _ in recs:
            by_kind[kind][status] += 1
        admitted = [lat for _, kind, status, lat in recs if kind == "search" and status == "200"]
        shed = [lat for _, _, status, lat in recs if status == "503 shed"]
        unavailable = [lat for _, _, status, lat in recs if status == "503 unavailable"]
        server_errors = sum(1 for _, _, s, _ in recs if s[:1] == "5" and not s.startswith("503") and s[:3].isdigit())
        timeouts = sum(1 for r in recs if r[2] == "timeout")
        refused = sum(1 for r in recs if r[2] == "connection error")
        windows = []
        w = self.o.window_s
        # The windows of the planned duration (a request that ends after it counts in the last).
        n_windows = max(1, int(np.ceil(self.o.minutes * 60 / w - 1e-9)))
        for k in range(n_windows):
            if k == n_windows - 1:
                rs = [r for r in recs if r[0] >= k * w]
            else:
                rs = [r for r in recs if k * w <= r[0] < (k + 1) * w]
            lat = [r[3] for r in rs if r[1] == "search" and r[2] == "200"]
            top = float("inf") if k == n_windows - 1 else (k + 1) * w + 1
            sample = next((s for s in reversed(self.samples) if k * w < s["t_s"] <= top), {})
            windows.append(
                {
                    "t_s": round((k + 1) * w, 1),
                    "requests": len(rs),
                    "statuses": dict(Counter(r[2] for r in rs)),
                    "search_p50_ms": _pct(lat, 50),
                    "search_p99_ms": _pct(lat, 99),
                    "server_rss_mb": sample.get("server_rss_mb"),
                    "postgres_pss_mb": sample.get("postgres_pss_mb"),
                    "faults": [f["kind"] for f in self.faults if k * w <= (f.get("at_s") or -1) < (k + 1) * w],
                }
            )
        rss = [s["server_rss_mb"] for s in self.samples if s.get("server_rss_mb") is not None]
        # Growth after warm-up: the last sample against the first one past the first 20% of the run.
        warm = [s["server_rss_mb"] for s in self.samples if s["t_s"] >= 0.2 * load_s and s.get("server_rss_mb")]
        kills = [f for f in self.faults if f["kind"] == "kill"]
        recoveries = [f["recovery_s"] for f in kills]
        failures = []
        if lost:
            failures.append(f"{lost} acknowledged events lost")
        if lost is None:
            failures.append("events not checked: the server exited")
        if server_errors:
            failures.append(f"{server_errors} answers 5xx other than 503")
        if timeouts:
            failures.append(f"{timeouts} requests timed out (> {self.o.timeout_s:g} s)")
        if refused:
            failures.append(f"{refused} requests could not connect")
        for f in kills:
            if f["recovery_s"] is None or f["recovery_s"] > self.o.recovery_limit_s:
                failures.append(f"not ready within {self.o.recovery_limit_s:g} s of the kill at {f['at_s']} s")
        rebuilt = [f for f in self.faults if f["kind"] == "rebuild"]
        if len(kills) < self.o.kills or len(rebuilt) < self.o.rebuilds:
            failures.append(
                f"faults not all run: {len(kills)} of {self.o.kills} kills, {len(rebuilt)} of {self.o.rebuilds} rebuilds"
            )
        for f in rebuilt:
            if "error" in f and not f["error"].startswith("TierBusy"):
                failures.append(f"the rebuild at {f['at_s']} s failed: {f['error']}")
        if not server_alive:
            failures.append(f"the server exited with {self.proc.returncode}")
        elif not drained:
            failures.append(f"the embed queue did not drain within {self.o.drain_timeout_s:g} s")
        total = len(recs)
        return {
            "minutes": self.o.minutes,
            "clients": self.o.clients,
            "rate": self.o.rate,
            "load_seconds": round(load_s, 1),
            "requests": total,
            "achieved_rate": round(total / load_s, 1) if load_s else None,
            "requests_by_kind": {k: dict(v) for k, v in by_kind.items()},
            "search_p50_ms": _pct(admitted, 50),
            "search_p99_ms": _pct(admitted, 99),
            "searches_admitted": len(admitted),
            "shed": len(shed),
            "shed_p99_ms": _pct(shed, 99),
            "unavailable": len(unavailable),
            "unavailable_p99_ms": _pct(unavailable, 99),
            "timeouts": timeouts,
            "connection_errors": refused,
            "server_errors": server_errors,
            "faults": sorted(self.faults, key=lambda f: f["at_s"]),
            "kills": len(kills),
            "recovery_s": recoveries,
            "recovery_max_s": max((r for r in recoveries if r is not None), default=None),
            "rebuilds": len(rebuilt),
            "rebuild_s": [f.get("seconds") for f in rebuilt],
            "rebuild_errors": [f["error"] for f in rebuilt if "error" in f],
            "seeded_events": seeded,
            "events_acknowledged": acked,
            "events_lost": lost,
            "drained": drained,
            "drain_seconds": round(drain_s, 1),
            "server_rss_mb_start": baseline.get("server_rss_mb"),
            "server_rss_mb_max": max(rss, default=None),
            "server_rss_growth_mb": round(warm[-1] - warm[0], 1) if len(warm) >= 2 else None,
            "postgres_pss_mb_start": baseline.get("postgres_pss_mb"),
            "postgres_pss_mb_end": self.samples[-1].get("postgres_pss_mb") if self.samples else None,
            "client_cpu_s": baseline["client_cpu_s"],
            "server_cpu_s": baseline["server_cpu_s"],
            "cores": os.cpu_count(),
            "windows": windows,
            "errors": self.errors,
            "failures": failures,
            "ok": not failures,
        }


def text_report(r: dict) -> str:
    """The report as a few lines and a table of the windows."""
    lines = [
        f"soak: {r['minutes']:g} min, {r['clients']} clients, {r['rate']:g} requests/s asked, "
        f"{r['achieved_rate']} answered/s ({r['requests']} requests)",
    ]
    for kind, statuses in r["requests_by_kind"].items():
        lines.append(f"  {kind:7} " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    lines += [
        f"admitted searches        p50 {r['search_p50_ms']} ms, p99 {r['search_p99_ms']} ms ({r['searches_admitted']})",
        f"shed (503 busy)          {r['shed']}, answered in p99 {r['shed_p99_ms']} ms",
        f"503 database unavailable {r['unavailable']}, answered in p99 {r['unavailable_p99_ms']} ms",
        f"timeouts {r['timeouts']}, connection errors {r['connection_errors']}, other 5xx {r['server_errors']}",
        f"postgres killed {r['kills']}x: ready again in {r['recovery_s']} s; warm tier rebuilt {r['rebuilds']}x "
        f"in {r['rebuild_s']} s" + (f" ({'; '.join(r['rebuild_errors'])})" if r["rebuild_errors"] else ""),
        f"events acknowledged {r['events_acknowledged']} (seed {r['seeded_events']}), lost {r['events_lost']}; "
        f"queue drained in {r['drain_seconds']} s",
        f"server RSS {r['server_rss_mb_start']} MB at start, max {r['server_rss_mb_max']} MB, "
        f"growth after warm-up {r['server_rss_growth_mb']} MB; PostgreSQL PSS {r['postgres_pss_mb_start']} -> "
        f"{r['postgres_pss_mb_end']} MB",
        f"CPU during the load: API process {r['server_cpu_s']} s, soak clients {r['client_cpu_s']} s "
        f"({r['load_seconds']} s on {r['cores']} cores)",
        "",
        f"{'t (s)':>7} {'reqs':>6} {'p50 ms':>8} {'p99 ms':>8} {'shed':>5} {'unavail':>7} {'RSS MB':>8} {'PG MB':>8}  faults",
    ]
    for w in r["windows"]:
        st = w["statuses"]
        lines.append(
            f"{w['t_s']:>7g} {w['requests']:>6} {w['search_p50_ms'] or '-':>8} {w['search_p99_ms'] or '-':>8} "
            f"{st.get('503 shed', 0):>5} {st.get('503 unavailable', 0):>7} {w['server_rss_mb'] or '-':>8} "
            f"{w['postgres_pss_mb'] or '-':>8}  {' '.join(w['faults'])}"
        )
    lines.append("")
    lines.append("OK" if r["ok"] else "FAILED: " + "; ".join(r["failures"]))
    lines += [f"  {e}" for e in r["errors"][:5]]
    return "\n".join(lines)


def run_soak(opts: SoakOptions, log: Callable[[str], None] = print) -> dict:
    soak = Soak(opts, log)
    try:
        return soak.run()
    finally:
        soak.close()


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(run_soak(SoakOptions(minutes=float(sys.argv[1])))))
