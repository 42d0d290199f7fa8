"""The payload codec: an event's JSON payload is stored zstd-compressed."""

from __future__ import annotations

import json
import threading

import zstandard

# zstandard's (de)compressors are not thread-safe, and requests run on a thread pool:
# one pair per thread (shared, concurrent batches failed with ZstdError).
_zstd = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_zstd, "compressor", None)
    if c is None:
        c = _zstd.compressor = zstandard.ZstdCompressor(level=3)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_zstd, "decompressor", None)
    if d is None:
        d = _zstd.decompressor = zstandard.ZstdDecompressor()
    return d


def compress_payload(payload: dict | None) -> bytes | None:
    if not payload:
        return None
    return _compressor().compress(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


def decompress_payload(blob: bytes | None) -> dict | None:
    if blob is None:
        return None
    return json.loads(_decompressor().decompress(blob))
