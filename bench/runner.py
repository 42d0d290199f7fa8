"""`ctxsearch bench`: build a project corpus of N documents and measure the service as users feel it.

Phases (each with a progress bar on a terminal):

1. corpus: generate realistic session events over many projects and sessions;
   embed a seed sample with the real model (the embedding rate, beside the plain
   torch fp32 rate on the same texts) and derive the rest (see bench/corpus.py);
2. bulk load through the ingest path, vectors included (bulk load rate), warm-tier
   build (index build time), at each size step 10k, 100k, ... up to N: search
   latency, recall, storage;
3. HTTP ingest in batches of 500 against a real `ctxsearch serve` subprocess;
4. freshness: 100 events/s over HTTP, time from 202 until vector search finds the event;
5. a warm-tier refresh over the grown corpus.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from tqdm import tqdm

from ctxsearch.bench.corpus import CorpusEvent, CorpusGenerator, perturb
from ctxsearch.config import Settings
from ctxsearch.domain.documents import embed_text
from ctxsearch.schemas import EventIn
from ctxsearch.store.ingest import load_embedded
from ctxsearch.store.search import SearchParams, search, tuning
from ctxsearch.store.tiers import rebuild_warm

MODES = ("hybrid", "vector", "text")
# Settings that would point the bench at the user's database (the bench has its own server),
# or make its keyless requests to that server fail.
USER_DATA_ENV = ("CTXSEARCH_DATABASE_URL", "CTXSEARCH_DATA_DIR", "CTXSEARCH_API_KEYS", "CTXSEARCH_URL")


@dataclass
class BenchOptions:
    docs: int = 100_000
    concurrency: int = 8
    seed_texts: int = 3000  # texts embedded with the real model; the rest derive from them
    queries: int = 200  # per mode at concurrency 1 (twice as many at the higher concurrency)
    recall_queries: int = 100
    ingest_events: int | None = None  # default: N/10, 5,000 to 50,000
    freshness_s: float = 20.0
    freshness_rate: float = 100.0
    steps: list[int] = field(default_factory=list)  # sizes to measure on the way to docs
    data_dir: Path | None = None
    keep: bool = False
    show_progress: bool = True
    settings: dict = field(default_factory=dict)  # CTXSEARCH_ overrides for the service under test


def default_steps(n: int) -> list[int]:
    """10k, 100k, 1M ... below n, then n."""
    steps, s = [], 10_000
    while s < n:
        steps.append(s)
        s *= 10
    return [*steps, n]


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "n": 0}
    a = np.asarray(values)
    return {
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
        "n": len(values),
    }


class Bench:
    def __init__(self, opts: BenchOptions, log: Callable[[str], None]):
        self.o = opts
        self.log = log
        self.own_dir = opts.data_dir is None
        self.data_dir = Path(opts.data_dir or tempfile.mkdtemp(prefix="ctxsearch-bench-", dir="/tmp"))
        env_settings = {k: v for k, v in opts.settings.items() if v is not None}
        # database_url=None: the bench's own embedded server, whatever the environment or a .env
        # say; the bench must never write into the user's database.
        self.settings = Settings(
            data_dir=self.data_dir,
            database_url=None,
            run_worker=False,
            refresh_interval_s=86_400,
            hot_max_docs=10_000_000,
            **env_settings,
        )
        if self.settings.model_cache_dir is None:
            # Keep the ONNX export across bench runs: the bench's data dir is thrown away.
            import platformdirs

            self.settings = self.settings.model_copy(
                update={"model_cache_dir": Path(platformdirs.user_cache_dir("ctxsearch")) / "models"}
            )
        self.gen = CorpusGenerator(opts.docs)
        self.nrng = np.random.default_rng(11)
        self.results: dict = {"docs": opts.docs, "steps": []}
        self.svc = None
        self.seeds: list[CorpusEvent] = []
        self.seed_vectors: np.ndarray | None = None
        self.loaded = 0
        self._session_no = 0

    def bar(self, **kw) -> tqdm:
        return tqdm(disable=not self.o.show_progress, leave=False, **kw)

    # -- setup -------------------------------------------------------------
    def start(self) -> None:
        from ctxsearch.service.facade import Service

        self.svc = Service.start(self.settings, run_worker=False)

    def close(self) -> None:
        if self.svc is not None:
            self.svc.close()  # the last user of the embedded server stops it
        if self.own_dir and not self.o.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- corpus and embedding --------------------------------------------------
    def embed_seeds(self) -> None:
        n = min(self.o.seed_texts, self.o.docs)
        self.seeds = self.gen.events(n)
        texts = [embed_text("", e.content, "event") for e in self.seeds]
        emb = self.svc.embedder
        batch = self.settings.embed_batch_size
        vectors = []
        t0, c0 = time.perf_counter(), time.process_time()
        with self.bar(total=n, desc="embed seed texts", unit="doc") as bar:
            for i in range(0, n, 256):
                vectors.append(emb.embed(texts[i : i + 256], batch_size=batch))
                bar.update(len(texts[i : i + 256]))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        self.seed_vectors = np.vstack(vectors)
        r = {
            "backend": emb.backend,
            "docs": n,
            "docs_per_s": n / wall,
            "cpu_s_per_1k_docs": 1000 * cpu / n,
            "mean_chars": float(np.mean([len(t) for t in texts])),
        }
        # The plain sentence-transformers fp32 rate on the same texts, interleaved to share the noise.
        if emb.backend != "torch":
            r.update(self.compare_torch(texts[:512], emb, batch))
        self.results["embedding"] = r
        self.log(f"embedding: {r['docs_per_s']:.0f} docs/s ({emb.backend})")

    def compare_torch(self, texts: list[str], emb, batch: int) -> dict:
        from ctxsearch.embeddings import Embedder

        ref = Embedder("torch", threads=self.settings.embed_threads)
        ref.embed(texts[:32])
        rates = {"torch": [], emb.backend: []}
        cpu = {"torch": [], emb.backend: []}
        vec = {}
        for _ in range(2):
            for name, e in (("torch", ref), (emb.backend, emb)):
                t0, c0 = time.perf_counter(), time.process_time()
                vec[name] = e.embed(texts, batch_size=batch)
                rates[name].append(len(texts) / (time.perf_counter() - t0))
                cpu[name].append(time.process_time() - c0)
        cos = (vec["torch"] * vec[emb.backend]).sum(axis=1)
        return {
            "torch_docs_per_s": max(rates["torch"]),
            "speedup_vs_torch": max(rates[emb.backend]) / max(rates["torch"]),
            "cpu_speedup_vs_torch": min(cpu["torch"]) / min(cpu[emb.backend]),
            "cosine_to_fp32_mean": float(cos.mean()),
            "cosine_to_fp32_min": float(cos.min()),
        }

    def corpus_chunk(self, n: int) -> tuple[list[CorpusEvent], np.ndarray]:
        """n more events: the seeds first, then variants of them in sessions of their own."""
        events: list[CorpusEvent] = []
        seed_idx: list[int] = []
        if self.loaded < len(self.seeds):
            take = self.seeds[self.loaded : self.loaded + n]
            events.extend(take)
            seed_idx.extend(range(self.loaded, self.loaded + len(take)))
        r = self.gen.rng
        while len(events) < n:
            self._session_no += 1
            sid = f"v{self._session_no:07d}"
            # A variant session replays part of a seed session: same project, same files.
            start = r.randrange(len(self.seeds))
            ts = datetime(2026, 6, 1, tzinfo=UTC) + timedelta(minutes=5 * self._session_no)
            for k in range(min(r.randint(10, 80), n - len(events))):
                j = (start + k) % len(self.seeds)
                if self.seeds[j].project_id != self.seeds[start].project_id:
                    j = start
                events.append(self.gen.derive(self.seeds[j], j, sid, k, ts + timedelta(seconds=20 * k)))
                seed_idx.append(j)
        idx = np.asarray(seed_idx)
        vectors = self.seed_vectors[idx].copy()
        derived = np.array([e.seed >= 0 for e in events])
        if derived.any():
            vectors[derived] = perturb(vectors[derived], self.nrng)
        return events, vectors

    # -- bulk load -------------------------------------------------------------
    def bulk_load(self, n: int) -> dict:
        """Store n events with their documents and vectors through the ingest path; sessions as condensed."""
        t0 = time.perf_counter()
        done = 0
        with self.bar(total=n, desc=f"bulk load to {self.loaded + n:,}", unit="ev") as bar:
            while done < n:
                k = min(20_000, n - done)
                events, vectors = self.corpus_chunk(k)
                batch = [EventIn.model_validate(e.as_api()) for e in events]
                with self.svc.db.connection() as conn:
                    load_embedded(
                        conn=conn, events=batch, vectors=vectors, context_chars=self.settings.event_context_chars
                    )
                done += k
                self.loaded += k
                bar.update(k)
        dt = time.perf_counter() - t0
        return {"events": n, "seconds": dt, "events_per_s": n / dt}

    def rebuild(self) -> dict:
        with self.svc.db.connection() as conn:
            t0 = time.perf_counter()
            gen, wm, rows, lists = rebuild_warm(conn=conn, settings=self.settings)
            dt = time.perf_counter() - t0
            n_idx = conn.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename = %s AND indexdef ILIKE %s",
                (f"warm_docs_{gen}", "%WHERE%"),
            ).fetchone()[0]
        return {"seconds": dt, "warm_rows": rows, "lists": lists, "project_indexes": n_idx}

    # -- measurements ----------------------------------------------------------
    def storage(self) -> dict:
        with self.svc.db.connection() as conn:
            row = conn.execute(
                "SELECT pg_total_relation_size('events'), pg_total_relation_size('documents'),"
                " pg_total_relation_size('sessions'),"
                " (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname ~ '^warm_docs_[0-9]+$'),"
                " (SELECT count(*) FROM events), (SELECT count(*) FROM documents),"
                " (SELECT pg_relation_size('events')), pg_database_size(current_database())"
            ).fetchone()
        ev_b, doc_b, sess_b, warm_b, n_ev, n_doc, ev_heap, db_b = row
        return {
            "bytes_per_event": ev_b / max(n_ev, 1),
            "events_heap_bytes_per_event": ev_heap / max(n_ev, 1),
            "bytes_per_document": (doc_b + int(warm_b or 0)) / max(n_doc, 1),
            "documents_table_bytes_per_document": doc_b / max(n_doc, 1),
            "warm_tier_bytes_per_document": int(warm_b or 0) / max(n_doc, 1),
            "sessions_bytes": sess_b,
            "database_bytes": db_b,
            "events": n_ev,
            "documents": n_doc,
        }

    def recall(self) -> dict:
        """Vector recall@10 of the service's vector arm against an exact scan, with and without the filter."""
        counts = self.project_counts()
        queries = self.gen.queries(self.o.recall_queries, counts)
        qvecs = self.svc.embedder.embed([q for _, q in queries])
        filtered, by_size, unfiltered = [], {}, []
        candidates = max(10 * self.settings.overfetch, self.settings.min_candidates)
        with self.svc.db.connection() as conn:
            for (project, q), v in self.bar(iterable=list(zip(queries, qvecs, strict=True)), desc="recall", unit="q"):
                exact = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM documents WHERE project_id = %s AND embedding IS NOT NULL"
                        " ORDER BY (embedding <=> %s) + 0, id LIMIT 10",
                        (project, v),
                    )
                ]
                got = [
                    r["doc_id"]
                    for r in search(
                        conn=conn,
                        query_vector=v,
                        params=SearchParams(
                            query=q, project_id=project, mode="vector", limit=10, candidates=candidates
                        ),
                    )
                ]
                rec = len(set(exact) & set(got)) / max(len(exact), 1)
                filtered.append(rec)
                size = counts.get(project, 0)
                bucket = "large" if size >= self.settings.project_index_min_rows else "small"
                by_size.setdefault(bucket, []).append(rec)
            text = self.text_recall(conn, queries, qvecs, candidates)
            unfiltered_build_s = self.unfiltered_recall(conn, qvecs[: max(10, self.o.recall_queries // 5)], unfiltered)
        return {
            **text,
            "vector_recall_at_10": float(np.mean(filtered)),
            "vector_recall_at_10_unfiltered": float(np.mean(unfiltered)),
            "recall_by_project_size": {k: {"recall": float(np.mean(v)), "queries": len(v)} for k, v in by_size.items()},
            "queries": len(filtered),
            "unfiltered_index_build_s": unfiltered_build_s,
        }

    def text_recall(self, conn, queries: list[tuple[str, str]], qvecs: np.ndarray, candidates: int) -> dict:
        """Recall@10 of the text arm's top lists (and of hybrid search with them) against
        exhaustive BM25 over every match. A hit counts when its exact score reaches the
        exhaustive 10th score, so that ties are not counted as misses."""
        recall: dict[str, list[float]] = {"text": [], "hybrid": []}
        for (project, q), v in self.bar(iterable=list(zip(queries, qvecs, strict=True)), desc="text recall", unit="q"):
            for mode, key in (("text", "text_score"), ("hybrid", "score")):
                params = SearchParams(
                    query=q, project_id=project, mode=mode, limit=10, candidates=candidates, **tuning(self.settings)
                )
                got = search(conn=conn, params=params, query_vector=v)
                exact = search(conn=conn, query_vector=v, params=replace(params, text_exact=True, match_pool=10**9))
                if exact:
                    bar = exact[-1][key] - 1e-9
                    recall[mode].append(sum(r[key] >= bar for r in got) / len(exact))
        return {
            "text_recall_at_10": float(np.mean(recall["text"])) if recall["text"] else None,
            "hybrid_recall_at_10_vs_exhaustive_text": float(np.mean(recall["hybrid"])) if recall["hybrid"] else None,
        }

    def unfiltered_recall(self, conn, qvecs: np.ndarray, out: list[float]) -> float:
        """Recall of one global ANN index over the whole warm tier, as the service would build it with
        per-project indexes off. Built in a transaction that is rolled back: the service never uses it."""
        import psycopg

        rows = conn.execute("SELECT generation, warm_rows FROM tier_state").fetchone()
        lists = max(rows[1] // 1000, 10) if rows[1] <= 1_000_000 else int(math.sqrt(rows[1]))
        kind = (
            "hnsw (embedding vector_cosine_ops)"
            if self.settings.vector_index == "hnsw"
            else f"ivfflat (embedding vector_cosine_ops) WITH (lists = {lists})"
        )
        t0 = time.perf_counter()
        with conn.transaction():
            conn.execute(f"CREATE INDEX bench_global_ann ON warm_docs_{int(rows[0])} USING {kind}")
            build_s = time.perf_counter() - t0
            for v in qvecs:
                exact = [
                    r[0]
                    for r in conn.execute("SELECT id FROM warm_docs ORDER BY (embedding <=> %b) + 0, id LIMIT 10", (v,))
                ]
                got = [r[0] for r in conn.execute("SELECT id FROM warm_docs ORDER BY embedding <=> %b LIMIT 10", (v,))]
                out.append(len(set(exact) & set(got)) / 10)
            raise psycopg.Rollback()
        return build_s

    def project_counts(self) -> dict[str, int]:
        with self.svc.db.connection() as conn:
            return dict(conn.execute("SELECT project_id, count(*) FROM documents GROUP BY project_id").fetchall())

    def latency(self, url: str) -> dict:
        """Search latency per mode at concurrency 1 and C, measured by the client over HTTP
        after 10 warm-up queries per mode."""
        out = {}
        counts = self.project_counts()
        # The server was just started: warm its connection pool, the model and the caches with
        # a few queries per mode (not measured, and not repeated below: every text is distinct).
        with httpx.Client(base_url=url, timeout=30) as client:
            for mode in MODES:
                for project, q in CorpusGenerator(self.o.docs, seed=4242).queries(10, counts):
                    client.post("/v1/search", json={"query": f"warm-up {q}", "project_id": project, "mode": mode})
        for conc in sorted({1, self.o.concurrency}):
            n = self.o.queries * (1 if conc == 1 else 2)
            for mode in MODES:
                out[f"{mode}_c{conc}"] = self.search_round(url, mode, self.gen.queries(n, counts), conc)
        return out

    def search_round(self, url: str, mode: str, queries: list[tuple[str, str]], conc: int) -> dict:
        """Latency percentiles of `queries` (project, text) in one mode, `conc` at a time."""
        lat: list[float] = []  # admitted searches (200)
        shed: list[float] = []  # refused at once beyond the concurrency bound (503 + Retry-After)
        server: list[float] = []
        errors = timeouts = 0
        local = threading.local()

        def one(pq: tuple[str, str]) -> None:
            nonlocal errors, timeouts
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(base_url=url, timeout=30)
            t0 = time.perf_counter()
            try:
                r = client.post("/v1/search", json={"query": pq[1], "project_id": pq[0], "mode": mode})
            except httpx.TimeoutException:
                timeouts += 1
                return
            took = (time.perf_counter() - t0) * 1000
            if r.status_code == 200:
                lat.append(took)
                server.append(r.json()["took_ms"])
            elif r.status_code == 503 and "retry-after" in r.headers and "busy" in r.text:
                shed.append(took)
            else:
                errors += 1

        with self.bar(total=len(queries), desc=f"search {mode} c={conc}", unit="q") as bar:
            with ThreadPoolExecutor(conc) as pool:
                for _ in pool.map(one, queries):
                    bar.update(1)
        return {
            **{f"{k}_ms" if k.startswith("p") or k == "mean" else k: v for k, v in percentiles(lat).items()},
            "server_p50_ms": percentiles(server)["p50"],
            "errors": errors,
            "timeouts": timeouts,
            "shed": len(shed),
            "shed_p99_ms": percentiles(shed)["p99"] if shed else None,
            "qps": None,
        }

    # -- the service under test, as its own process ------------------------------
    def serve(self, worker: bool) -> ServerProcess:
        return ServerProcess(self.data_dir, self.settings, worker=worker)

    def server_log(self) -> str:
        logs = sorted(self.data_dir.glob("serve-*.log"), key=lambda p: p.stat().st_mtime)
        return logs[-1].read_text(errors="replace")[-3000:] if logs else ""

    def http_ingest(self, url: str, server_pid: int) -> dict:
        n = self.o.ingest_events or min(max(self.o.docs // 10, 5_000), 50_000)
        gen = CorpusGenerator(n, seed=99, prefix="bench-http")
        events = [e.as_api() for e in gen.events(n)]
        batches = [events[i : i + 500] for i in range(0, n, 500)]
        local = threading.local()
        accepted = 0
        failures: list[str] = []

        def post(batch: list[dict]) -> int:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(base_url=url, timeout=120)
            try:
                r = client.post("/v1/events", json={"events": batch})
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return 0
            if r.status_code != 202:
                # Counted and shown, not fatal: the run still measures everything else.
                failures.append(f"{r.status_code}: {r.text[:200]}")
                return 0
            return r.json()["accepted"]

        conc = max(1, min(self.o.concurrency, 4))
        cpu0 = self.service_cpu_s(server_pid)
        t0 = time.perf_counter()
        with self.bar(total=n, desc=f"HTTP ingest c={conc}", unit="ev") as bar:
            with ThreadPoolExecutor(conc) as pool:
                for k in pool.map(post, batches):
                    accepted += k
                    bar.update(k)
        dt = time.perf_counter() - t0
        cpu = self.service_cpu_s(server_pid) - cpu0
        # Leave the measured corpus as it was: these events have no vectors yet.
        with self.svc.db.connection() as conn:
            for table in ("documents", "events", "sessions"):
                conn.execute(f"DELETE FROM {table} WHERE project_id LIKE 'bench-http-%%'")
        cores = os.cpu_count() or 1
        # What the CPU spent per event (API process and PostgreSQL); on a shared machine the wall
        # rate understates what the same cores deliver when they are the service's alone.
        if failures:
            self.log(f"HTTP ingest: {len(failures)} batches failed, first: {failures[0]}\n{self.server_log()}")
        return {
            "events": accepted,
            "failed_batches": len(failures),
            "first_failure": failures[0] if failures else None,
            "server_log_tail": self.server_log() if failures else None,
            "batch": 500,
            "concurrency": conc,
            "seconds": dt,
            "events_per_s": accepted / dt,
            "service_cpu_us_per_event": 1e6 * cpu / max(accepted, 1),
            "cpu_bound_events_per_s": accepted / cpu * cores if cpu > 0 else None,
        }

    def service_cpu_s(self, server_pid: int) -> float:
        """CPU seconds used so far by the API process and the embedded PostgreSQL's processes."""
        import psutil

        procs = [psutil.Process(server_pid)]
        pid_file = self.settings.pgdata / "postmaster.pid"
        if pid_file.exists():
            postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
            procs += [postmaster, *postmaster.children(recursive=True)]
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def freshness(self, url: str, server_pid: int) -> dict:
        """Post `rate` events/s for `freshness_s`; time from 202 until a vector search finds each probe."""
        gen = CorpusGenerator(10_000, seed=123, prefix="bench-fresh")
        project = gen.projects[0].project_id
        per_tick = max(1, int(round(self.o.freshness_rate / 10)))
        ticks = int(self.o.freshness_s * 10)
        probes: list[tuple[str, str, str, float]] = []  # (event id, content, timestamp, acked at)
        lock = threading.Lock()
        done = threading.Event()
        latencies: list[float] = []
        sent = 0

        def producer() -> None:
            nonlocal sent
            with httpx.Client(base_url=url, timeout=30) as client:
                sessions = gen.sessions()
                pending: list[CorpusEvent] = []
                t_next = time.perf_counter()
                for tick in range(ticks):
                    while len(pending) < per_tick:
                        pending.extend(next(sessions))
                    batch, pending = pending[:per_tick], pending[per_tick:]
                    for e in batch:
                        e.project_id = project
                        e.content = f"{e.content} [{e.event_id}]"  # unique text, embedded anew
                    r = client.post("/v1/events", json={"events": [e.as_api() for e in batch]})
                    acked = time.perf_counter()
                    sent += len(batch)
                    if r.status_code == 202 and tick % 2 == 0:
                        with lock:
                            probes.append((batch[0].event_id, batch[0].content, batch[0].ts.isoformat(), acked))
                    t_next += 0.1
                    time.sleep(max(0.0, t_next - time.perf_counter()))
            done.set()

        def prober() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                while True:
                    with lock:
                        item = probes[0] if probes else None
                    if item is None:
                        if done.is_set():
                            return
                        time.sleep(0.02)
                        continue
                    eid, content, ts, acked = item
                    # Restricted to the event's own timestamp: the vector arm returns it once it is
                    # embedded, whatever its neighbours (its vector also holds the previous event's text).
                    r = client.post(
                        "/v1/search",
                        json={
                            "query": content,
                            "project_id": project,
                            "mode": "vector",
                            "since": ts,
                            "until": ts,
                            "kinds": ["event"],
                            "limit": 10,
                        },
                    )
                    if r.status_code == 200 and any(h["id"] == eid for h in r.json()["results"]):
                        latencies.append(time.perf_counter() - acked)
                        with lock:
                            probes.pop(0)
                    elif time.perf_counter() - acked > 120:
                        latencies.append(float("inf"))
                        with lock:
                            probes.pop(0)
                    else:
                        time.sleep(0.05)

        cpu0 = self.service_cpu_s(server_pid)
        threads = [threading.Thread(target=producer), threading.Thread(target=prober)]
        with self.bar(total=ticks / 10, desc=f"freshness at {self.o.freshness_rate:.0f} ev/s", unit="s") as bar:
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            while threads[1].is_alive():
                threads[1].join(0.5)
                bar.n = min(round(time.perf_counter() - t0, 1), ticks / 10)
                bar.refresh()
        cpu = self.service_cpu_s(server_pid) - cpu0
        p = percentiles(latencies)
        with self.svc.db.connection() as conn:
            for table in ("documents", "events", "sessions"):
                conn.execute(f"DELETE FROM {table} WHERE project_id = %s", (project,))
        return {
            "rate_events_per_s": sent / (ticks / 10),
            "probes": len(latencies),
            "p50_s": p["p50"],
            "p99_s": p["p99"],
            "max_s": max(latencies) if latencies else None,
            "found_by": "vector search (mode=vector) for the event's own text, at its timestamp",
            # CPU the API (ingest, embedding, probe searches) and PostgreSQL spent per event; the
            # rate the service's cores could sustain is cores / this.
            "service_cpu_ms_per_event": 1000 * cpu / max(sent, 1),
            "cpu_bound_events_per_s": sent / cpu * (os.cpu_count() or 1) if cpu > 0 else None,
        }

    # -- the run -----------------------------------------------------------------
    def run(self) -> dict:
        self.start()
        steps = sorted(
            {s for s in (self.o.steps or default_steps(self.o.docs)) if 0 < s <= self.o.docs} | {self.o.docs}
        )
        self.embed_seeds()
        server = None
        try:
            for size in steps:
                step = {"docs": size}
                self.log(f"building {size:,} documents")
                step["bulk_load"] = self.bulk_load(size - self.loaded)
                step["warm_build"] = self.rebuild()
                step["storage"] = self.storage()
                step["recall"] = self.recall()
                server = self.serve(worker=False)
                step["search"] = self.latency(server.url)
                if size == steps[-1]:
                    step["http_ingest"] = self.http_ingest(server.url, server.proc.pid)
                server.stop()
                server = None
                self.results["steps"].append(step)
                s = step["search"]["hybrid_c1"]
                self.log(
                    f"{size:,} docs: hybrid p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, "
                    f"recall {step['recall']['vector_recall_at_10']:.3f}"
                )
            self.log("freshness")
            server = self.serve(worker=True)
            self.results["freshness"] = self.freshness(server.url, server.proc.pid)
            server.stop()
            server = None
            # A refresh over the corpus plus 5% new documents.
            extra = max(1, self.o.docs // 20)
            self.bulk_load(extra)
            self.results["warm_refresh"] = self.rebuild()
        finally:
            if server is not None:
                server.stop()
        return self.summary()

    def summary(self) -> dict:
        last = self.results["steps"][-1]
        hy = last["search"]["hybrid_c1"]
        emb = self.results.get("embedding", {})
        fresh = self.results.get("freshness", {})
        flat = {
            "docs": self.o.docs,
            "search_p50_ms": hy["p50_ms"],
            "search_p95_ms": hy["p95_ms"],
            "search_p99_ms": hy["p99_ms"],
            "vector_recall_at_10": last["recall"]["vector_recall_at_10"],
            "vector_recall_at_10_unfiltered": last["recall"]["vector_recall_at_10_unfiltered"],
            "text_recall_at_10": last["recall"].get("text_recall_at_10"),
            "hybrid_recall_at_10_vs_exhaustive_text": last["recall"].get("hybrid_recall_at_10_vs_exhaustive_text"),
            "ingest_events_per_s": last.get("http_ingest", {}).get("events_per_s"),
            "ingest_cpu_bound_events_per_s": last.get("http_ingest", {}).get("cpu_bound_events_per_s"),
            "bulk_load_events_per_s": last["bulk_load"]["events_per_s"],
            "embed_docs_per_s": emb.get("docs_per_s"),
            "embed_speedup_vs_torch": emb.get("speedup_vs_torch"),
            "freshness_p50_s": fresh.get("p50_s"),
            "freshness_p99_s": fresh.get("p99_s"),
            "bytes_per_event": last["storage"]["bytes_per_event"],
            "bytes_per_document": last["storage"]["bytes_per_document"],
            "warm_build_s": last["warm_build"]["seconds"],
            "warm_refresh_s": self.results.get("warm_refresh", {}).get("seconds"),
            "settings": {
                "embed_backend": self.settings.embed_backend,
                "vector_index": self.settings.vector_index,
                "ivfflat_probes": self.settings.ivfflat_probes,
                "project_index_min_rows": self.settings.project_index_min_rows,
                "text_top_docs": self.settings.text_top_docs,
                "text_pool": self.settings.text_pool,
            },
            "corpus": "templated coding-session events over many projects (Zipf sizes) and sessions; "
            f"{emb.get('docs', 0)} seed texts embedded with the real model, the rest derived "
            "from them (text variants, vectors = seed vector + noise, cosine ~0.93)",
        }
        for key, s in last["search"].items():
            flat[f"search_{key}_p50_ms"] = s["p50_ms"]
            flat[f"search_{key}_p99_ms"] = s["p99_ms"]
        return {**flat, "details": self.results}


def wait_for_server(
    url: str, proc: subprocess.Popen, log_tail: Callable[[], str], path: str = "/healthz", timeout: float = 180
) -> None:
    """Poll a starting `ctxsearch serve` until `path` answers 200; RuntimeError with the log's
    tail if the process exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ctxsearch serve exited with {proc.returncode}:\n{log_tail()}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"ctxsearch serve: {path} not answering after {timeout:g} s:\n{log_tail()}")


class ServerProcess:
    """`python -m ctxsearch serve` on a free port, sharing the bench's embedded PostgreSQL."""

    def __init__(self, data_dir: Path, settings: Settings, worker: bool):
        data_dir = Path(data_dir).resolve()  # the server runs in it: relative paths would move
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in USER_DATA_ENV}
        env |= {
            "HF_HUB_OFFLINE": "1",
            "CTXSEARCH_LOG_LEVEL": "WARNING",
            "CTXSEARCH_REFRESH_INTERVAL_S": "86400",
            "CTXSEARCH_HOT_MAX_DOCS": "10000000",
        }
        for name in (
            "embed_backend",
            "embed_threads",
            "vector_index",
            "ivfflat_probes",
            "hnsw_ef_search",
            "project_index_min_rows",
            "overfetch",
            "min_candidates",
            "embed_batch_size",
            "model_cache_dir",
        ):
            value = getattr(settings, name)
            if value is not None:
                env[f"CTXSEARCH_{name.upper()}"] = str(value.resolve() if isinstance(value, Path) else value)
        args = [sys.executable, "-m", "ctxsearch", "serve", "--data-dir", str(data_dir), "--port", str(self.port)]
        if not worker:
            args.append("--no-worker")
        self.log_path = data_dir / f"serve-{self.port}.log"
        self._log = open(self.log_path, "w")
        # Started in the data dir: a .env in the caller's folder must not name another database.
        self.proc = subprocess.Popen(args, cwd=data_dir, env=env, stdout=subprocess.DEVNULL, stderr=self._log)
        try:
            wait_for_server(self.url, self.proc, self.log_tail)
        except RuntimeError:
            self.stop()
            raise

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        self._log.close()
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it has not exited within timeout."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_report(result: dict, out_dir: Path) -> list[Path]:
    """Markdown with every figure beside its target, and PNG plots of latency and recall against size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    steps = result["details"]["steps"]
    sizes = [s["docs"] for s in steps]
    files = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in steps[-1]["search"]:
        ax.plot(sizes, [s["search"][key]["p50_ms"] for s in steps], marker="o", label=f"{key} p50")
        ax.plot(sizes, [s["search"][key]["p99_ms"] for s in steps], marker="x", linestyle="--", label=f"{key} p99")
    ax.set_xscale("log")
    ax.set_xlabel("documents")
    ax.set_ylabel("ms (HTTP, query embedding included)")
    ax.set_title("search latency")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    files.append(out_dir / "latency.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(sizes, [s["recall"]["vector_recall_at_10"] for s in steps], marker="o", label="project filter")
    ax.plot(sizes, [s["recall"]["vector_recall_at_10_unfiltered"] for s in steps], marker="x", label="no filter")
    ax.plot(
        sizes, [s["recall"].get("text_recall_at_10") for s in steps], marker="s", label="text, top lists vs exhaustive"
    )
    ax.axhline(0.95, color="grey", linestyle=":", label="target 0.95")
    ax.set_xscale("log")
    ax.set_xlabel("documents")
    ax.set_ylabel("recall@10 vs exact / exhaustive")
    ax.legend()
    fig.tight_layout()
    files.append(out_dir / "recall.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)

    def fmt(v, spec=".1f"):
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    emb = result["details"].get("embedding", {})
    fresh = result["details"].get("freshness", {})
    rows = [
        ("hybrid search p50, c=1", f"{fmt(result['search_p50_ms'])} ms", "≤ 25 ms"),
        ("hybrid search p99, c=1", f"{fmt(result['search_p99_ms'])} ms", "≤ 100 ms"),
        ("vector recall@10, project filter", fmt(result["vector_recall_at_10"], ".3f"), "≥ 0.95"),
        ("vector recall@10, no filter", fmt(result["vector_recall_at_10_unfiltered"], ".3f"), "—"),
        ("text recall@10, top lists vs exhaustive BM25", fmt(result.get("text_recall_at_10"), ".3f"), "—"),
        (
            "hybrid recall@10, top lists vs exhaustive BM25",
            fmt(result.get("hybrid_recall_at_10_vs_exhaustive_text"), ".3f"),
            "—",
        ),
        ("HTTP ingest (batches of 500)", f"{fmt(result['ingest_events_per_s'], '.0f')} events/s", "≥ 10,000"),
        (
            "HTTP ingest, CPU-bound projection",
            f"{fmt(result.get('ingest_cpu_bound_events_per_s'), '.0f')} events/s "
            "(events / CPU-seconds of API + PostgreSQL x cores)",
            "≥ 10,000",
        ),
        ("bulk load (COPY)", f"{fmt(result['bulk_load_events_per_s'], '.0f')} events/s", "—"),
        (
            "embedding",
            f"{fmt(result['embed_docs_per_s'], '.0f')} docs/s ({emb.get('backend')}), "
            f"{fmt(emb.get('speedup_vs_torch'), '.2f')}x wall / {fmt(emb.get('cpu_speedup_vs_torch'), '.2f')}x CPU "
            f"vs torch fp32, cosine {fmt(emb.get('cosine_to_fp32_mean'), '.4f')}",
            "≥ 3x",
        ),
        ("freshness p99 at 100 events/s", f"{fmt(result['freshness_p99_s'], '.2f')} s", "≤ 2 s"),
        (
            "freshness, CPU-bound projection",
            f"{fmt(fresh.get('cpu_bound_events_per_s'), '.0f')} events/s sustainable "
            f"({fmt(fresh.get('service_cpu_ms_per_event'), '.2f')} ms CPU per event, embedding included)",
            "≥ 100 events/s",
        ),
        ("bytes per event (events table + indexes)", fmt(result["bytes_per_event"], ".0f"), "≤ 300"),
        (
            "bytes per event, events heap only (payload included)",
            fmt(steps[-1]["storage"]["events_heap_bytes_per_event"], ".0f"),
            "≤ 300",
        ),
        ("bytes per document (documents + warm tier)", fmt(result["bytes_per_document"], ".0f"), "—"),
        ("warm tier build", f"{fmt(result['warm_build_s'])} s", "—"),
        ("warm tier refresh (+5%)", f"{fmt(result['warm_refresh_s'])} s", "—"),
    ]
    lines = [
        f"# ctxsearch bench, {result['docs']:,} documents",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores. "
        "Settings: " + ", ".join(f"{k}={v}" for k, v in result["settings"].items()) + ".",
        "",
        "| figure | measured | target |",
        "| --- | --- | --- |",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "## Growth",
        "",
        "| docs | hybrid p50 / p99 ms | vector p50 / p99 ms | text p50 / p99 ms | recall (filter / none) "
        "| bulk load ev/s | warm build s | bytes/event | bytes/doc |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in steps:
        se = s["search"]
        lines.append(
            f"| {s['docs']:,} | {fmt(se['hybrid_c1']['p50_ms'])} / {fmt(se['hybrid_c1']['p99_ms'])} "
            f"| {fmt(se['vector_c1']['p50_ms'])} / {fmt(se['vector_c1']['p99_ms'])} "
            f"| {fmt(se['text_c1']['p50_ms'])} / {fmt(se['text_c1']['p99_ms'])} "
            f"| {fmt(s['recall']['vector_recall_at_10'], '.3f')} / {fmt(s['recall']['vector_recall_at_10_unfiltered'], '.3f')} "
            f"| {fmt(s['bulk_load']['events_per_s'], '.0f')} | {fmt(s['warm_build']['seconds'])} "
            f"| {fmt(s['storage']['bytes_per_event'], '.0f')} | {fmt(s['storage']['bytes_per_document'], '.0f')} |"
        )
    lines += [
        "",
        "## Search latency at the largest size (HTTP, query embedding included)",
        "",
        "Percentiles are of the admitted searches; beyond the server's concurrency bound a search is",
        "shed (503 with Retry-After at once), counted apart with its own latency.",
        "",
        "| mode, concurrency | p50 ms | p95 ms | p99 ms | server p50 ms | shed (p99 ms) | timeouts |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, s in steps[-1]["search"].items():
        shed = f"{s.get('shed', 0)} ({fmt(s.get('shed_p99_ms'))})" if s.get("shed") else "0"
        lines.append(
            f"| {key} | {fmt(s['p50_ms'])} | {fmt(s['p95_ms'])} | {fmt(s['p99_ms'])} | {fmt(s['server_p50_ms'])} "
            f"| {shed} | {s.get('timeouts', 0)} |"
        )
    lines += [
        "",
        "## Corpus",
        "",
        result["corpus"] + ".",
        "",
        "![latency](latency.png)",
        "",
        "![recall](recall.png)",
        "",
    ]
    files.append(out_dir / "report.md")
    files[-1].write_text("\n".join(lines))
    (out_dir / "bench.json").write_text(json.dumps(result, indent=2, default=str))
    files.append(out_dir / "bench.json")
    return files
