"""The query-embedding cache is shared by the API's threads: hammered from 8 of them with
room for 2 entries (every call a hit, a miss or an eviction racing the others), no call
fails and each returns the vector of its own text."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import OrderedDict

import numpy as np

from ctxsearch.embeddings import Embedder

TEXTS = [f"flaky test number {i} in the payment retry logic" for i in range(3)]
ROUNDS = 200


class _SlowMoves(OrderedDict):
    """Widens the window between a cache read and the move to the end that follows it: with
    an unlocked cache, another thread evicts the key in between in every run, not in one of a few."""

    def move_to_end(self, key, last=True):
        time.sleep(0.0002)
        super().move_to_end(key, last)


def test_query_cache_is_thread_safe(settings, service):
    embedder = Embedder("onnx-int8", cache_size=2, cache_dir=settings.models_dir)
    want = {t: embedder.embed([t])[0].copy() for t in TEXTS}  # uncached, one at a time
    assert isinstance(embedder._cache, OrderedDict), "the cache changed: adapt _SlowMoves to it"
    embedder._cache = _SlowMoves()
    errors: list[str] = []
    calls = [0] * 8
    start = threading.Barrier(8)

    def hammer(n: int) -> None:
        rng = random.Random(n)
        start.wait()
        try:
            for _ in range(ROUNDS):
                text = rng.choice(TEXTS)
                if not np.array_equal(embedder.embed_query(text), want[text]):
                    errors.append(f"wrong vector for {text!r}")
                calls[n] += 1
        except Exception as exc:  # reported below, with the others: a thread's exception is lost otherwise
            errors.append(repr(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: the race shows within a few hundred calls
    try:
        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        sys.setswitchinterval(interval)
    assert errors == [], errors[:5]
    assert calls == [ROUNDS] * 8  # every thread ran to the end
    assert len(embedder._cache) <= 2
