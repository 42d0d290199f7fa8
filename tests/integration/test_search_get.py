"""GET /v1/search takes the fusion parameters too (`fusion`, `rrf_k`, `weights.vector`,
`weights.text`) and ranks with them exactly as POST /v1/search does with the same body."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import event
from tests.integration.test_search import CORPUS

QUERY = "credentials rejected and connection refused"
# Each changes the ranking of the default (rrf with the server's weights).
VARIANTS = {
    "text only": {"fusion": "weighted", "weights": {"vector": 0, "text": 1}},
    "vector only": {"fusion": "weighted", "weights": {"vector": 1, "text": 0}},
    "sharp rrf": {"fusion": "rrf", "rrf_k": 1},
    "vector-heavy rrf": {"fusion": "rrf", "weights": {"vector": 5, "text": 0.1}},
    "vector-heavy convex": {"weights": {"vector": 5, "text": 0.1}},
}


@pytest.fixture(scope="module")
def fusion_project(client) -> str:
    project = f"get-{uuid.uuid4().hex[:8]}"
    evs = [event(project, s, n, t, c, files=f, id=f"ev{n}") for n, (s, t, c, f) in enumerate(CORPUS)]
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    deadline = time.monotonic() + 60
    while client.get(f"/v1/projects/{project}/stats").json()["pending"]:
        assert time.monotonic() < deadline, "still pending after 60 s"
        time.sleep(0.1)
    return project


def _query(body: dict) -> list[tuple[str, str]]:
    out = []
    for name, value in body.items():
        name = "q" if name == "query" else name
        if isinstance(value, list):
            out += [(name, v) for v in value]
        elif isinstance(value, dict):
            out += [(f"{name}.{k}", str(v)) for k, v in value.items()]
        else:
            out.append((name, str(value)))
    return out


def _ranking(page: dict) -> list[tuple[str, float]]:
    return [(h["id"], h["score"]) for h in page["results"]]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_get_ranks_with_the_fusion_parameters_like_post(client, fusion_project, variant):
    body = {"query": QUERY, "project_id": fusion_project, "kinds": ["event"], "limit": 12}
    default = client.post("/v1/search", json=body).json()
    posted = client.post("/v1/search", json={**body, **VARIANTS[variant]}).json()
    got = client.get("/v1/search", params=_query({**body, **VARIANTS[variant]}))
    assert got.status_code == 200, got.text
    assert _ranking(got.json()) == _ranking(posted)
    assert _ranking(posted) != _ranking(default), "the variant changes nothing: it tests nothing"
    assert len(posted["results"]) >= 3


def test_the_weights_reorder_the_hits(client, fusion_project):
    body = {"q": QUERY, "project_id": fusion_project, "kinds": ["event"], "limit": 12, "fusion": "weighted"}
    text = client.get("/v1/search", params={**body, "weights.vector": "0", "weights.text": "1"}).json()
    vector = client.get("/v1/search", params={**body, "weights.vector": "1", "weights.text": "0"}).json()
    assert [h["id"] for h in text["results"]] != [h["id"] for h in vector["results"]]
