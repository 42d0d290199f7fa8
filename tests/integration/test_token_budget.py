"""`max_tokens` is counted in the model's own tokens (MiniLM, BERT WordPiece) with the
default onnx-int8 backend too, not estimated from characters: checked with a WordPiece
tokenizer built here from the bundled vocab.txt, apart from the service's counter."""

from __future__ import annotations

import pytest
from tokenizers import BertWordPieceTokenizer

from ctxsearch.embeddings.model import model_path
from ctxsearch.schemas import SearchHit
from tests.conftest import event

TEXTS = [
    "psycopg.OperationalError: connection refused on port 5432 while running migrations",
    "TypeError: Cannot read properties of undefined (reading 'map') in renderWidgets()",
    '{"id":"ev1","snippet":"<b>Café</b> naïve — ünïcode 日本語 ✓","files":["src/app/db.py"]}',
    "def _close_tags(snippet: str) -> str:  # never leave half a <b> tag",
]


@pytest.fixture(scope="module")
def wordpiece() -> BertWordPieceTokenizer:
    tok = BertWordPieceTokenizer(str(model_path() / "vocab.txt"), lowercase=True)
    # Built from the vocabulary, not a stand-in that maps everything to [UNK].
    assert tok.encode("connection refused", add_special_tokens=False).tokens == ["connection", "refused"]
    assert tok.encode("psycopg", add_special_tokens=False).tokens == ["ps", "##y", "##co", "##pg"]
    return tok


def _count(tok: BertWordPieceTokenizer, text: str) -> int:
    return len(tok.encode(text, add_special_tokens=False).ids)


def test_the_service_counts_wordpiece_tokens(service, wordpiece):
    assert service.settings.embed_backend == "onnx-int8" and service.embedder.model is None
    counter = service.token_counter
    for text in TEXTS:
        assert counter.count(text) == _count(wordpiece, text), text
    # ~4 characters a token, the old estimate, is far off for JSON like a hit's: the bug guarded against.
    assert _count(wordpiece, TEXTS[2]) > 2 * ((len(TEXTS[2]) + 3) // 4)


@pytest.fixture(scope="module")
def budget_project(client) -> str:
    import time
    import uuid

    project = f"budget-{uuid.uuid4().hex[:8]}"
    evs = [
        event(
            project,
            f"s{n % 3}",
            n,
            "error",
            f"{TEXTS[n % len(TEXTS)]} (seen again in run {n}, see "
            f"src/module_{n}/handler_{n}.py::HandlerClass{n}.dispatch)",
            files=[f"src/module_{n}/handler_{n}.py"],
        )
        for n in range(16)
    ]
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    deadline = time.monotonic() + 60
    while client.get(f"/v1/projects/{project}/stats").json()["pending"]:
        assert time.monotonic() < deadline, "still pending after 60 s"
        time.sleep(0.1)
    return project


@pytest.mark.parametrize("max_tokens", [600, 1000, 2000])
def test_hits_fit_the_budget_by_an_independent_count(client, service, wordpiece, budget_project, max_tokens):
    assert service.settings.embed_backend == "onnx-int8"
    body = {"query": "connection refused TypeError handler dispatch", "project_id": budget_project, "limit": 20}
    page = client.post("/v1/search", json={**body, "max_tokens": max_tokens}).json()
    hits = page["results"]
    # A hit costs the tokens of its JSON as a client receives it, nulls left out.
    costs = [_count(wordpiece, SearchHit.model_validate(h).model_dump_json(exclude_none=True)) for h in hits]
    assert len(hits) >= 2 and page["truncated"] is True, (len(hits), costs)
    assert sum(costs) <= max_tokens, (costs, max_tokens)
    # and the budget is used, not left mostly empty (one more hit, or its cut, would not fit)
    assert sum(costs) > max_tokens * 0.6, (costs, max_tokens)
