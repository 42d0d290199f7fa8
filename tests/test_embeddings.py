"""The ONNX backends compute the same embedding as sentence-transformers fp32."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings import Embedder

TEXTS = [
    "ZeroDivisionError in compute_average_price when the cart is empty",
    "decided to pin stripe after the webhook signature mismatch",
    "ran pytest tests/test_auth.py: 41 passed, 2 failed",
    "",
    "long " * 400,
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return Embedder("torch").embed(TEXTS)


@pytest.mark.parametrize("backend, min_cosine", [("onnx", 0.9999), ("onnx-int8", 0.97)])
def test_onnx_backends_match_fp32(settings, service, reference, backend, min_cosine):
    vectors = Embedder(backend, cache_dir=settings.models_dir).embed(TEXTS, batch_size=2)
    assert vectors.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosine = (vectors * reference).sum(axis=1)
    assert cosine.min() >= min_cosine, cosine


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="embed_backend"):
        Embedder("tensorflow")
