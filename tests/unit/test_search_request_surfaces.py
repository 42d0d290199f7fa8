"""SearchRequest is declared once: GET /v1/search, the MCP tool search_context and
`ctxsearch search` each take every one of its fields, and each builds the same request
from them as POST /v1/search does from its body. A field added to SearchRequest and not
exposed by one of them fails here (and needs a sample value in SAMPLE)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from mcp import Client

from ctxsearch.cli.main import main
from ctxsearch.config import Settings
from ctxsearch.http.app import create_app
from ctxsearch.mcp.server import build_server
from ctxsearch.schemas import SearchRequest, SearchResponse
from ctxsearch.service.facade import Service

FIELDS = set(SearchRequest.model_fields)

# A value other than the default for every field: each surface must carry each one through.
SAMPLE: dict[str, Any] = {
    "query": "flaky payment test",
    "project_id": "proj-1",
    "session_id": "s1",
    "types": ["error", "decision"],
    "files": ["src/", "pay.py"],
    "since": "2026-01-01T00:00:00Z",
    "until": "2026-02-01T00:00:00Z",
    "kinds": ["event"],
    "limit": 7,
    "mode": "text",
    "explain": True,
    "group": "session",
    "fusion": "weighted",
    "rrf_k": 5,
    "weights": {"vector": 0.5, "text": 2.5},
    "min_confidence": 0.25,
    "max_tokens": 300,
    "cursor": "abc.def",
}

# The documented names where a surface does not use the field's own.
GET_NAMES = {"query": "q"}
CLI_NAMES = {
    "project_id": "--project",
    "session_id": "--session",
    "types": "--type",
    "files": "--file",
    "kinds": "--kind",
    "weights": "--weight",
}


def _covered(field: str, names: set[str], name: str, sep: str) -> bool:
    # A nested model's fields count: weights.vector (GET), --weight-vector (CLI).
    return name in names or any(n.startswith(name + sep) for n in names)


class Recorder:
    """A stand-in Service that keeps the requests it gets."""

    def __init__(self) -> None:
        self.requests: list[SearchRequest] = []

    def search(self, req: SearchRequest) -> SearchResponse:
        self.requests.append(req)
        return SearchResponse(results=[], mode=req.mode, took_ms=1.0)

    def require_project(self, project_id: str, principal=None) -> None:
        """Every project exists here: the surfaces are under test, not the lookup."""

    def close(self) -> None:
        pass


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def app(tmp_path: Path, recorder: Recorder):
    return create_app(Settings(data_dir=tmp_path, api_keys={}), service=recorder)


def test_the_sample_has_every_field():
    assert set(SAMPLE) == FIELDS, f"give SAMPLE a non-default value for {FIELDS - set(SAMPLE)}"
    want = SearchRequest.model_validate(SAMPLE)
    defaults = SearchRequest(query="x", project_id="p")
    assert [f for f in FIELDS - {"query", "project_id"} if getattr(want, f) == getattr(defaults, f)] == []


def test_get_parameters_cover_every_field(app):
    operation = app.openapi()["paths"]["/v1/search"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert all(p["in"] == "query" for p in params.values())
    missing = [f for f in FIELDS if not _covered(f, set(params), GET_NAMES.get(f, f), ".")]
    assert not missing, f"GET /v1/search lacks {missing}"
    # Documented from the model: descriptions, types and bounds.
    fields = SearchRequest.model_fields
    assert params["q"]["required"] and params["q"]["description"] == fields["query"].description
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}
    assert params["types"]["schema"]["type"] == "array" and "error" in params["types"]["schema"]["items"]["enum"]
    assert params["fusion"]["schema"]["enum"] == ["convex", "rrf", "weighted"]
    assert params["weights.text"]["schema"]["maximum"] == 100 and params["rrf_k"]["schema"]["minimum"] == 1
    assert all(p["description"] for p in params.values())


def test_mcp_arguments_cover_every_field():
    async def listed() -> dict:
        async with Client(build_server(lambda: None)) as client:
            return {t.name: t for t in (await client.list_tools()).tools}["search_context"].input_schema

    schema = asyncio.run(listed())
    assert FIELDS <= set(schema["properties"]), f"search_context lacks {FIELDS - set(schema['properties'])}"
    assert set(schema["required"]) == {"query", "project_id"}
    assert schema["properties"]["limit"]["maximum"] == 100
    assert schema["properties"]["query"]["description"] == SearchRequest.model_fields["query"].description


def test_cli_options_cover_every_field():
    names = {o for p in main.commands["search"].params for o in [p.name, *p.opts]}
    missing = [
        f
        for f in FIELDS
        if not _covered(f, names, CLI_NAMES.get(f, f if f == "query" else "--" + f.replace("_", "-")), "-")
    ]
    assert not missing, f"`ctxsearch search` lacks {missing}"


def _as_query(sample: dict[str, Any]) -> list[tuple[str, str]]:
    """The documented GET form: `q`, repeated list parameters, dotted nested fields."""
    out: list[tuple[str, str]] = []
    for name, value in sample.items():
        name = GET_NAMES.get(name, name)
        if isinstance(value, list):
            out += [(name, str(v)) for v in value]
        elif isinstance(value, dict):
            out += [(f"{name}.{k}", str(v)) for k, v in value.items()]
        else:
            out.append((name, str(value).lower() if isinstance(value, bool) else str(value)))
    return out


def _as_args(sample: dict[str, Any]) -> list[str]:
    args = [sample["query"]]
    for name, value in sample.items():
        option = CLI_NAMES.get(name, "--" + name.replace("_", "-"))
        if name == "query":
            continue
        if isinstance(value, bool):
            args += [option] if value else []
        elif isinstance(value, list):
            args += [a for v in value for a in (option, str(v))]
        elif isinstance(value, dict):
            args += [a for k, v in value.items() for a in (f"{option}-{k}", str(v))]
        else:
            args += [option, str(value)]
    return args


def test_every_surface_builds_the_posted_request(app, recorder, monkeypatch):
    with TestClient(app) as http:
        assert http.post("/v1/search", json=SAMPLE).status_code == 200
        r = http.get("/v1/search", params=_as_query(SAMPLE))
        assert r.status_code == 200, r.text

    async def call() -> None:
        async with Client(build_server(lambda: recorder)) as client:
            result = await client.call_tool("search_context", SAMPLE)
            assert not result.is_error, result.content

    asyncio.run(call())
    monkeypatch.setattr(Service, "start", classmethod(lambda cls, *a, **k: recorder))
    r = CliRunner().invoke(main, ["search", *_as_args(SAMPLE)])
    assert r.exit_code == 0, r.output

    posted, *others = recorder.requests
    assert posted == SearchRequest.model_validate(SAMPLE)
    assert others == [posted] * 3, "GET, MCP or CLI built another request than POST"


@pytest.mark.parametrize(
    "params, message",
    [
        ({"weights.vector": "-1"}, "weights.vector: Input should be greater than or equal to 0"),
        ({"weights.text": "lots"}, "weights.text: Input should be a valid number"),
        ({"rrf_k": "0"}, "rrf_k: Input should be greater than or equal to 1"),
        ({"fusion": "max"}, "fusion: Input should be 'convex', 'rrf' or 'weighted'"),
        ({"kinds": ["summary", "event", "event"]}, "kinds: List should have at most 2 items"),
    ],
)
def test_get_errors_name_the_parameter(app, params, message):
    with TestClient(app) as http:
        r = http.get("/v1/search", params={"q": "x", "project_id": "p", **params})
    assert r.status_code == 422 and r.json()["error"].startswith(message), r.json()


def test_get_without_weights_leaves_the_servers(app, recorder):
    with TestClient(app) as http:
        assert http.get("/v1/search", params={"q": "x", "project_id": "p", "weights.text": "3"}).status_code == 200
        assert http.get("/v1/search", params={"q": "x", "project_id": "p"}).status_code == 200
    partial, plain = recorder.requests
    assert partial.weights is not None and partial.weights.text == 3 and partial.weights.vector == 1.0
    assert plain.weights is None and plain.rrf_k is None


def test_cli_errors_name_the_option(monkeypatch, recorder):
    monkeypatch.setattr(Service, "start", classmethod(lambda cls, *a, **k: recorder))
    r = CliRunner().invoke(main, ["search", " ", "--project", "p", "--limit", "0", "--weight-text", "-2"])
    assert r.exit_code == 2
    for words in ("QUERY: must not be blank", "--limit: Input should be greater", "--weight-text: Input should be"):
        assert words in r.output, r.output
    assert recorder.requests == []
    r = CliRunner().invoke(main, ["search", "x", "--project", "p"])
    assert r.exit_code == 0, r.output
    assert recorder.requests[0].weights is None  # no weight given: the server's apply
