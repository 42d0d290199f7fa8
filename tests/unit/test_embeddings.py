"""The ONNX backends compute the same embedding as sentence-transformers fp32."""

from __future__ import annotations

import numpy as np
import pytest

from ctxsearch.embeddings import Embedder

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


def test_int8_graph_is_fused_and_fully_quantized(settings, service):
    """The speed of onnx-int8 rests on this shape: one QAttention per layer (QKV in int8), every
    other projection an int8 MatMul, and no SkipLayerNormalization (slow on CPU)."""
    from collections import Counter

    import onnx

    from ctxsearch.embeddings.model import export_onnx

    ops = Counter(n.op_type for n in onnx.load(str(export_onnx(settings.models_dir, int8=True))).graph.node)
    assert ops["QAttention"] == 6 and ops["MatMulInteger"] == 18 and ops["EmbedLayerNormalization"] == 1, ops
    assert not {"Attention", "MatMul", "SkipLayerNormalization", "BiasGelu"} & set(ops), ops


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="embed_backend"):
        Embedder("tensorflow")


def test_bench_embeddings_on_a_tiny_beir_folder(settings, service, tmp_path):
    import json

    from click.testing import CliRunner

    from ctxsearch.cli.main import main

    (tmp_path / "qrels").mkdir()
    docs = {
        "d1": "The mitochondria is the powerhouse of the cell",
        "d2": "Stripe webhooks need a signature check",
        "d3": "Paris is the capital of France",
    }
    (tmp_path / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "title": "", "text": v}) for k, v in docs.items())
    )
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "what produces energy in cells"}))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    r = CliRunner().invoke(
        main,
        ["bench-embeddings", str(tmp_path), "--backends", "onnx,onnx-int8"],
        env={"CTXSEARCH_MODEL_CACHE_DIR": str(settings.models_dir)},
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["backends"]["onnx"]["ndcg_at_10"] == 1.0
    assert abs(out["backends"]["onnx-int8"]["delta_vs_first"]) <= 0.01
    r = CliRunner().invoke(main, ["bench-embeddings", str(tmp_path), "--backends", "bert"])
    assert r.exit_code == 2 and "--backends" in r.output
