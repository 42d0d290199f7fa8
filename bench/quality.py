"""Does a faster embedding backend keep retrieval quality? Vector-only nDCG@10 on a BEIR folder.

Embeds the corpus and the queries with each backend and ranks by cosine with numpy
(no database), so the figure isolates the model. For speed, the corpus can be cut to
the documents judged for the chosen queries plus a random sample of the others.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np


def load_beir(folder: Path, split: str = "test") -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """corpus {id: text}, queries {id: text}, qrels {query id: {doc id: grade}} of a BEIR-format folder."""
    corpus = {}
    with open(folder / "corpus.jsonl") as f:
        for line in f:
            d = json.loads(line)
            corpus[str(d["_id"])] = f"{d.get('title', '')} {d.get('text', '')}".strip()
    queries = {}
    with open(folder / "queries.jsonl") as f:
        for line in f:
            q = json.loads(line)
            queries[str(q["_id"])] = q["text"]
    qrels_file = folder / "qrels" / f"{split}.tsv"
    if not qrels_file.exists():
        qrels_file = sorted((folder / "qrels").glob("*.tsv"))[0]
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_file) as f:
        next(f)
        for line in f:
            qid, did, grade = line.rstrip("\n").split("\t")[:3]
            qrels.setdefault(qid, {})[did] = int(grade)
    return corpus, queries, qrels


def embedding_quality(
    folder: Path,
    backends: list[str],
    *,
    max_queries: int = 300,
    distractors: int | None = 1500,
    models_dir: Path | None = None,
    seed: int = 0,
) -> dict:
    """nDCG@10 per backend (and its change against the first), with the embedding time."""
    from ranx import Qrels, Run, evaluate

    from ctxsearch.embeddings import Embedder

    corpus, queries, qrels = load_beir(folder)
    qids = [q for q in qrels if q in queries][:max_queries]
    judged = {d for q in qids for d in qrels[q] if d in corpus}
    doc_ids = sorted(judged)
    if distractors is None:
        doc_ids = sorted(corpus)
    else:
        others = sorted(set(corpus) - judged)
        doc_ids += random.Random(seed).sample(others, min(distractors, len(others)))
    out: dict = {"queries": len(qids), "documents": len(doc_ids), "backends": {}}
    for backend in backends:
        embedder = Embedder(backend, cache_dir=models_dir)
        t0 = time.perf_counter()
        docs = embedder.embed([corpus[d] for d in doc_ids])
        qv = embedder.embed([queries[q] for q in qids])
        seconds = time.perf_counter() - t0
        scores = qv @ docs.T
        run = {}
        for i, q in enumerate(qids):
            top = np.argsort(-scores[i])[:100]
            run[q] = {doc_ids[j]: float(scores[i, j]) for j in top}
        ndcg = float(evaluate(Qrels({q: qrels[q] for q in qids}), Run(run), "ndcg@10"))
        out["backends"][backend] = {"ndcg_at_10": ndcg, "embed_seconds": seconds}
    first = out["backends"][backends[0]]["ndcg_at_10"]
    for r in out["backends"].values():
        r["delta_vs_first"] = r["ndcg_at_10"] - first
    return out
