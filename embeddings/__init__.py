"""MiniLM loading (bundled, offline), batching and the content-hash cache key."""

from ctxsearch.embeddings.model import DIMENSIONS, MODEL_NAME, Embedder, content_hash, get_embedder, model_path

__all__ = ["DIMENSIONS", "MODEL_NAME", "Embedder", "content_hash", "get_embedder", "model_path"]
