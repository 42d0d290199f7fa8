"""Redaction on the write path: whatever an agent printed, no credential is stored, embedded,
summarised, highlighted or returned, whichever way the event came in."""

from __future__ import annotations

import json
import secrets
import string

from ctxsearch.schemas import EventIn
from tests.conftest import event

ALNUM = string.ascii_letters + string.digits


def _aws() -> str:
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def _slack() -> str:
    return f"xoxb-{secrets.randbelow(10**10):010d}-{secrets.randbelow(10**12):012d}-" + "".join(
        secrets.choice(ALNUM) for _ in range(24)
    )


def _stripe() -> str:
    return "sk_live_" + "".join(secrets.choice(ALNUM) for _ in range(24))


def _password() -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(20))


def _everything(client, project: str, session: str) -> str:
    """Every answer that could show stored text, as one string."""
    out = []
    for mode in ("text", "vector", "hybrid"):
        for query in ("credentials deploy database", "AKIA aws key", "xoxb slack token stripe"):
            r = client.post("/v1/search", json={"query": query, "project_id": project, "mode": mode, "limit": 50})
            out.append(r.text)
    out.append(client.get(f"/v1/sessions/{session}", params={"project_id": project}).text)
    out.append(client.get(f"/v1/projects/{project}/sessions").text)
    return "\n".join(out)


def test_credentials_never_reach_the_store(client, service, project, wait_indexed):
    aws, slack, stripe, pw = _aws(), _slack(), _stripe(), _password()
    events = [
        event(
            project,
            "s1",
            1,
            "tool_call",
            f"$ env | grep KEY\nAWS_ACCESS_KEY_ID={aws}\nSLACK_BOT_TOKEN={slack}",
            tool="Bash",
        ),
        event(
            project,
            "s1",
            2,
            "error",
            f"psycopg.OperationalError: connection to postgresql://app:{pw}@db.internal:5432/shop failed",
            files=[f"config/{stripe}.json"],
            payload={"env": {"STRIPE_KEY": stripe}, stripe: "as a key"},
        ),
        event(
            project,
            "s1",
            3,
            "message",
            f"deploy the database with the new credentials <private>the vault root token is {pw}</private> and restart",
        ),
    ]
    r = client.post("/v1/events", json={"events": events})
    assert r.status_code == 202 and r.json()["redactions"] >= 5, r.text
    wait_indexed(project)

    shown = _everything(client, project, "s1")
    for secret in (aws, slack, stripe, pw):
        assert secret not in shown
    assert "[REDACTED:" in shown and "restart" in shown  # the rest of the text stays searchable
    with service.db.connection() as conn:
        stored = json.dumps(
            conn.execute(
                "SELECT array_agg(row_to_json(e)::text) FROM (SELECT event_id, content, files, tool FROM events"
                " WHERE project_id = %s) e",
                (project,),
            ).fetchone()[0]
        )
        docs = json.dumps(
            conn.execute(
                "SELECT array_agg(title || ' ' || body || ' ' || coalesce(context, '') || ' ' || tsv::text)"
                " FROM documents WHERE project_id = %s",
                (project,),
            ).fetchone()[0]
        )
        payloads = [
            p
            for (p,) in conn.execute(
                "SELECT payload FROM events WHERE project_id = %s AND payload IS NOT NULL", (project,)
            )
        ]
    from ctxsearch.domain.payload import decompress_payload

    blobs = json.dumps([decompress_payload(p) for p in payloads])
    for secret in (aws, slack, stripe, pw):
        assert secret not in stored and secret not in docs and secret not in blobs
        assert secret.lower() not in docs  # nor as a lexeme
    assert "vault root token" not in stored  # a private span is dropped, not redacted


def test_agent_summaries_and_mcp_records_are_redacted(client, service, project, wait_indexed):
    token = "ghp_" + "".join(secrets.choice(ALNUM) for _ in range(36))
    put = client.put("/v1/sessions/s9/summary", json={"project_id": project, "summary": f"Rotated {token} today"})
    assert put.status_code == 200 and token not in put.text
    r = service.ingest([EventIn.model_validate(event(project, "s9", 1, "note", f"export GITHUB_TOKEN={token}"))])
    assert r.redactions == 1
    wait_indexed(project)
    assert token not in _everything(client, project, "s9")


def test_redactions_are_counted_in_metrics(client, project):
    key = _stripe()
    before = _metric(client, "stripe")
    client.post("/v1/events", json={"events": [event(project, "m", 1, "note", f"STRIPE={key} and {_stripe()}")]})
    assert _metric(client, "stripe") - before == 2


def _metric(client, kind: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("ctxsearch_redactions_total{") and f'kind="{kind}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0
