"""How well credential redaction works: recall, false positives and speed.

    python -m ctxsearch.evals.redaction /work/shared/datasets/agent-sessions [--json out.json] [--show N]

On an agent-sessions folder (see its README) it reports
  1. recall on the planted credentials (claude-code/planted-secrets.json): each value must be
     gone from the transcripts claude-code/projects/**.jsonl once every line is redacted, both
     as parsed JSON (redact_value, what ingest does) and as raw text (redact_text on the line);
  2. every redaction made on events.jsonl (real agent events with no real credentials), each
     printed with its context so that it can be judged a true or a false positive;
  3. redact_text throughput over events.jsonl, in events/s on one core;
and, with no dataset needed, 4. recall per kind on freshly generated credentials of every kind
embedded in varied agent-output contexts.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import secrets
import string
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxsearch.domain.redact import redact_text, redact_value

_MARK = re.compile(r"\[REDACTED:([a-z_]+)\]")

# ---------------------------------------------------------------------------------------------
# credential generators: right prefix, alphabet and length; fresh on every run

_AN = string.ascii_letters + string.digits
_UP = string.ascii_uppercase + string.digits
_HEX = "0123456789abcdef"
_B64 = string.ascii_letters + string.digits + "+/"
_URLSAFE = _AN + "-_"


def _r(alphabet: str, n: int, rng: random.Random) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": rng.choice(("HS256", "RS256")), "typ": "JWT"}).encode())
    claims = {"sub": str(rng.randrange(10**9)), "iat": rng.randrange(10**9, 2 * 10**9), "role": "admin"}
    return f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(rng.randbytes(rng.choice((32, 256))))}"


def _pem(rng: random.Random, kind: str, headers: str = "") -> str:
    body = base64.b64encode(rng.randbytes(rng.choice((120, 600, 1190)))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{headers}{lines}\n-----END {kind}-----"


def _password(rng: random.Random) -> str:
    """A human-style password: letters and digits with a symbol or two, 9 to 15 characters."""
    core = list(_r(_AN, rng.randint(7, 12), rng) + rng.choice("!#%^*-_.~+=") + str(rng.randint(0, 99)))
    rng.shuffle(core)
    return "".join(core).lstrip("-=")  # a leading "=" or "-" would read as an operator or a flag


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "aws_key_id": lambda r: r.choice(("AKIA", "ASIA")) + _r(_UP, 16, r),
    "aws_secret_key": lambda r: _r(_B64, 40, r),
    "aws_session_token": lambda r: "IQoJb3JpZ2luX2Vj" + _r(_B64, r.randint(300, 600), r) + "==",
    "github_classic": lambda r: r.choice(("ghp_", "gho_", "ghu_", "ghs_", "ghr_")) + _r(_AN, 36, r),
    "github_fine_grained": lambda r: "github_pat_" + _r(_AN, 22, r) + "_" + _r(_AN, 59, r),
    "openai_legacy": lambda r: "sk-" + _r(_AN, 20, r) + "T3BlbkFJ" + _r(_AN, 20, r),
    "openai_project": lambda r: "sk-proj-" + _r(_URLSAFE, 156, r),
    "openai_service_admin": lambda r: r.choice(("sk-svcacct-", "sk-admin-")) + _r(_URLSAFE, 120, r),
    "anthropic": lambda r: "sk-ant-" + r.choice(("api03", "admin01")) + "-" + _r(_URLSAFE, 93, r) + "AA",
    "slack_bot": lambda r: f"xoxb-{r.randrange(10**10, 10**11)}-{r.randrange(10**12, 10**13)}-{_r(_AN, 24, r)}",
    "slack_user": lambda r: (
        f"xoxp-{r.randrange(10**10, 10**11)}-{r.randrange(10**10, 10**11)}-"
        f"{r.randrange(10**12, 10**13)}-{_r(_HEX, 32, r)}"
    ),
    "slack_webhook": lambda r: f"T{_r(_UP, 10, r)}/B{_r(_UP, 10, r)}/{_r(_AN, 24, r)}",
    "stripe_live": lambda r: r.choice(("sk_live_", "rk_live_")) + _r(_AN, r.choice((24, 99)), r),
    "stripe_test": lambda r: "sk_test_" + _r(_AN, r.choice((24, 99)), r),
    "stripe_webhook": lambda r: "whsec_" + _r(_AN, 32, r),
    "google_api_key": lambda r: "AIza" + _r(_URLSAFE, 35, r),
    "google_oauth_secret": lambda r: "GOCSPX-" + _r(_URLSAFE, 28, r),
    "google_access_token": lambda r: "ya29." + _r(_URLSAFE, r.randint(100, 200), r),
    "private_key_rsa": lambda r: _pem(r, "RSA PRIVATE KEY"),
    "private_key_encrypted": lambda r: _pem(
        r, "RSA PRIVATE KEY", f"Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,{_r(_HEX, 32, r).upper()}\n\n"
    ),
    "private_key_openssh": lambda r: _pem(r, "OPENSSH PRIVATE KEY"),
    "private_key_pkcs8": lambda r: _pem(r, r.choice(("PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"))),
    "jwt": _jwt,
    "url_password": _password,
    "ado_password": _password,
    "bearer_token": lambda r: _r(_URLSAFE, r.randint(32, 64), r),
    "basic_auth": lambda r: base64.b64encode(f"deploy:{_password(r)}".encode()).decode(),
    "assigned_secret": lambda r: _r(r.choice((_AN, _HEX, _URLSAFE)), r.randint(20, 64), r),
    "assigned_password": _password,
    "npm_token": lambda r: "npm_" + _r(_AN, 36, r),
    "gitlab": lambda r: "glpat-" + _r(_URLSAFE, 20, r),
    "huggingface": lambda r: "hf_" + _r(string.ascii_letters, 34, r),
    "sendgrid": lambda r: "SG." + _r(_URLSAFE, 22, r) + "." + _r(_URLSAFE, 43, r),
    "twilio_auth_token": lambda r: _r(_HEX, 32, r),
    "azure_storage_key": lambda r: _r(_B64, 86, r) + "==",
    "pypi": lambda r: "pypi-AgEIcHlwaS5vcmc" + _r(_URLSAFE, 120, r),
}

# Names a generic secret is assigned to, per generated kind.
_NAMES = {
    "aws_secret_key": ["AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"],
    "aws_session_token": ["AWS_SESSION_TOKEN", "aws_session_token"],
    "assigned_secret": [
        "API_TOKEN",
        "CLIENT_SECRET",
        "SECRET_KEY",
        "DJANGO_SECRET_KEY",
        "X-Api-Key",
        "ACCESS_KEY",
        "auth_token",
        "PRIVATE_KEY",
        "credentials",
        "apiKey",
        "sessionToken",
        "JWT_SECRET",
        "ENCRYPTION_KEY",
        "webhook_secret",
        "AUTH",
    ],
    "assigned_password": [
        "DB_PASSWORD",
        "POSTGRES_PASSWORD",
        "password",
        "MYSQL_PWD",
        "passwd",
        "SMTP_PASS",
        "redis_password",
        "adminPassword",
        "PGPASSWORD",
    ],
    "twilio_auth_token": ["TWILIO_AUTH_TOKEN"],
}
_NAMED_CONTEXTS = [
    "$ cat .env\nDEBUG=1\n{n}={s}\nLOG_LEVEL=info\n",
    '$ export {n}="{s}"\n$ python manage.py runserver\n',
    '{{\n  "service": "billing",\n  "{n}": "{s}",\n  "retries": 3\n}}',
    "config.yaml:\n  database:\n    {n}: {s}\n    timeout: 30\n",
    "settings.py:12:    {n} = '{s}'\n",
    "$ ./deploy.sh --{flag} {s} --region eu-west-1\n",
    "$ ./deploy.sh --{flag}={s}\n",
    '  File "/app/client.py", line 40, in connect\n    conn = Client({low}="{s}")\n',
    "> GET /v1/items HTTP/1.1\n> {n}: {s}\n> Accept: */*\n",
]
# Where a self-identifying token may turn up.
_TOKEN_CONTEXTS = [
    "$ env | sort\nHOME=/home/dev\nMY_VALUE={s}\nPATH=/usr/bin:/bin\n",
    "$ cat .env\nDEBUG=1\nCRED={s}\n",
    'Traceback (most recent call last):\n  File "app.py", line 3, in <module>\n'
    "    client.login({s!r})\nValueError: bad credential {s}\n",
    '{{"config": {{"value": "{s}", "enabled": true}}}}',
    "export VALUE='{s}'",
    "2024-05-01T10:00:00Z INFO using {s} for the request",
    "$ git remote -v\norigin\thttps://x-access-token:{s}@github.com/org/repo.git (push)",
    '$ curl -H "Authorization: Bearer {s}" https://api.example.com',
    "key={s}",
]


def _contexts(kind: str, secret: str, rng: random.Random) -> list[str]:
    if kind in _NAMES:
        out = []
        for tpl in _NAMED_CONTEXTS:
            n = rng.choice(_NAMES[kind])
            out.append(tpl.format(n=n, s=secret, flag=n.lower().replace("_", "-"), low=n.lower()))
        return out
    if kind.startswith("private_key"):
        return [
            f"$ cat ~/.ssh/id_rsa\n{secret}\n$ ls",
            json.dumps({"type": "service_account", "private_key": secret + "\n", "client_email": "a@b.iam"}),
            f"Writing key to disk:\n{secret.replace(chr(10), chr(13) + chr(10))}\nDone.",
            f"$ head -c 300 key.pem\n{secret[:300]}",  # truncated output: no END line
        ]
    if kind == "url_password":
        return [
            "sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection failed\n"
            f"(Background on this error at: postgresql://app:{secret}@db.internal:5432/app)",
            f"$ git remote -v\norigin\thttps://deploy:{secret}@git.example.com/org/repo.git (fetch)",
            f"DATABASE_URL=postgres://user:{secret}@localhost/db",
            f"redis.exceptions.ConnectionError: Error connecting to redis://:{secret}@cache:6379/0",
            f"jdbc:mysql://db:3306/app?user=app&password={secret}&useSSL=true",
            f"mongodb+srv://admin:{secret}@cluster0.abcde.mongodb.net/test?retryWrites=true",
        ]
    if kind == "ado_password":
        return [
            f'conn = "Server=tcp:sql.example.net,1433;Database=app;User ID=svc;Password={secret};Encrypt=True;"',
            f"Data Source=db;Initial Catalog=x;User Id=sa;Pwd={secret};",
            f'"ConnectionStrings": {{"Default": "Host=db;Username=app;Password={secret}"}}',
        ]
    if kind in ("bearer_token", "basic_auth"):
        scheme = "Bearer" if kind == "bearer_token" else "Basic"
        return [
            f"$ curl -s -H 'Authorization: {scheme} {secret}' https://api.example.com/v1/items",
            f"> GET /v1 HTTP/1.1\n> Host: api\n> authorization: {scheme} {secret}\n> Accept: */*",
            json.dumps({"headers": {"Authorization": f"{scheme} {secret}", "Accept": "application/json"}}),
            f"requests.exceptions.HTTPError: 401 for url; headers={{'Proxy-Authorization': '{scheme} {secret}'}}",
        ]
    if kind == "slack_webhook":
        return [
            f'curl -X POST https://hooks.slack.com/services/{secret} -d \'{{"text":"hi"}}\'',
            f"SLACK_WEBHOOK_URL=https://hooks.slack.com/services/{secret}",
        ]
    if kind == "azure_storage_key":
        return [
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={secret};EndpointSuffix=core.windows.net",
        ]
    if kind == "npm_token":
        return [tpl.format(s=secret) for tpl in _TOKEN_CONTEXTS] + [
            f"$ cat ~/.npmrc\n//registry.npmjs.org/:_authToken={secret}\n"
        ]
    return [tpl.format(s=secret) for tpl in _TOKEN_CONTEXTS]


def _secret_parts(kind: str, secret: str) -> list[str]:
    """What must not survive: the secret, or for a key block each of its base64 lines."""
    if kind.startswith("private_key"):
        return [line for line in secret.splitlines()[1:-1] if len(line) >= 16 and ":" not in line]
    if kind == "basic_auth":
        return [secret, base64.b64decode(secret).decode().split(":", 1)[1]]
    return [secret]


@dataclass
class KindRecall:
    cases: int = 0
    caught: int = 0
    misses: list[str] = field(default_factory=list)


def _views(ctx: str) -> list[tuple[str, str]]:
    """The redacted forms a context can be stored in: its text; as a raw transcript line
    (JSON-escaped, redact_text on the line); as parsed JSON (redact_value)."""
    line = json.dumps({"type": "user", "message": {"content": [{"type": "tool_result", "content": ctx}]}})
    views = [
        ("text", redact_text(ctx).value),
        ("raw line", redact_text(line).value),
        ("json", json.dumps(redact_value(json.loads(line)).value)),
    ]
    if ctx.startswith("{"):
        views.append(("json ctx", json.dumps(redact_value(json.loads(ctx)).value)))
    return views


def generated_recall(n_per_kind: int = 20, seed: int | None = None) -> dict[str, KindRecall]:
    """Recall per kind on freshly generated credentials in varied contexts. A case counts as
    caught only if the secret is gone from every stored form of it (see _views)."""
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    out: dict[str, KindRecall] = defaultdict(KindRecall)
    for kind, gen in GENERATORS.items():
        for _ in range(n_per_kind):
            secret = gen(rng)
            parts = _secret_parts(kind, secret)
            for ctx in _contexts(kind, secret, rng):
                rec = out[kind]
                rec.cases += 1
                leaked = [(name, red) for name, red in _views(ctx) if any(p in red for p in parts)]
                if not leaked:
                    rec.caught += 1
                elif len(rec.misses) < 3:
                    rec.misses.append(f"[{leaked[0][0]}] {leaked[0][1][:300]}")
    return dict(out)


# ---------------------------------------------------------------------------------------------
# the dataset


def planted_recall(root: Path) -> dict[str, Any]:
    planted = json.loads((root / "claude-code" / "planted-secrets.json").read_text())
    values = [p["value"] for p in planted]
    as_value, as_text = [], []
    for path in sorted((root / "claude-code" / "projects").rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                as_value.append(json.dumps(redact_value(json.loads(line)).value, ensure_ascii=False))
                as_text.append(redact_text(line).value)
    blob_value, blob_text = "\n".join(as_value), "\n".join(as_text)
    per = []
    for p in planted:
        per.append({**p, "gone_value": p["value"] not in blob_value, "gone_text": p["value"] not in blob_text})
    return {
        "planted": len(values),
        "recall_redact_value": sum(x["gone_value"] for x in per) / max(1, len(per)),
        "recall_redact_text": sum(x["gone_text"] for x in per) / max(1, len(per)),
        "lines": len(as_value),
        "per_secret": per,
    }


def _events(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / "events.jsonl").read_text().splitlines() if line.strip()]


def _replaced(original: str, redacted: str) -> list[str]:
    """The original text behind each mark of `redacted`, in order ('?' if it cannot be aligned)."""
    marks = list(_MARK.finditer(redacted))
    parts, pos = [], 0
    for m in marks:
        parts.append(re.escape(redacted[pos : m.start()]))
        pos = m.end()
    parts.append(re.escape(redacted[pos:]))
    aligned = re.fullmatch("(.*?)".join(parts), original, re.DOTALL)
    return list(aligned.groups()) if aligned else ["?"] * len(marks)


def event_hits(root: Path, planted: list[str]) -> list[dict[str, Any]]:
    """Every redaction on events.jsonl, with its context and the original text it replaced."""
    hits = []
    for e in _events(root):
        text = e["content"]
        red = redact_text(text)
        if not red.total:
            continue
        for m, removed in zip(_MARK.finditer(red.value), _replaced(text, red.value), strict=True):
            hits.append(
                {
                    "event": e["id"],
                    "kind": m.group(1),
                    "removed": removed,
                    "planted": any(p in removed for p in planted),
                    "context": red.value[max(0, m.start() - 80) : m.end() + 40],
                }
            )
        if red.counts.get("private"):
            hits.append(
                {"event": e["id"], "kind": "private", "removed": "<private> span", "context": "", "planted": False}
            )
    return hits


def throughput(root: Path, repeat: int = 5) -> dict[str, float]:
    """redact_text over every event's content, best of `repeat` passes: wall-clock and CPU time
    of this (single-threaded) process, so a busy machine shows as a gap between the two."""
    texts = [e["content"] for e in _events(root)]
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for t in texts:
            redact_text(t)
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    size = sum(len(t) for t in texts)
    return {
        "events": len(texts),
        "mean_chars": size / len(texts),
        "events_per_s": len(texts) / wall,
        "events_per_cpu_s": len(texts) / cpu,
        "mb_per_s": size / wall / 1e6,
    }


def run(root: Path, n_per_kind: int = 20, seed: int | None = None) -> dict[str, Any]:
    planted = planted_recall(root)
    hits = event_hits(root, [p["value"] for p in planted["per_secret"]])
    gen = generated_recall(n_per_kind, seed)
    return {
        "planted": planted,
        "events_hits": hits,
        "events_hits_by_kind": dict(Counter(h["kind"] for h in hits)),
        "throughput": throughput(root),
        "generated": {
            k: {"cases": v.cases, "caught": v.caught, "recall": v.caught / v.cases, "misses": v.misses}
            for k, v in gen.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path, help="an agent-sessions folder")
    ap.add_argument("--per-kind", type=int, default=20, help="generated credentials per kind")
    ap.add_argument("--seed", type=int, default=None, help="seed the generator (default: fresh)")
    ap.add_argument("--json", type=Path, help="also write the full report here")
    ap.add_argument("--show", type=int, default=50, help="event hits to print")
    args = ap.parse_args(argv)
    report = run(args.dataset, args.per_kind, args.seed)
    p = report["planted"]
    print(f"1. planted credentials: {p['planted']} in {p['lines']} transcript lines")
    print(f"   recall, redact_value on parsed lines: {p['recall_redact_value']:.3f}")
    print(f"   recall, redact_text on raw lines:     {p['recall_redact_text']:.3f}")
    for x in p["per_secret"]:
        if not (x["gone_value"] and x["gone_text"]):
            print(f"   MISSED {x['kind']}: {x['value']}")
    hits = report["events_hits"]
    print(f"2. redactions on events.jsonl: {len(hits)} {report['events_hits_by_kind']}")
    for h in hits[: args.show]:
        flag = "planted" if h.get("planted") else "check"
        print(f"   [{flag}] {h['event']} {h['kind']}: removed {h.get('removed', '?')[:80]!r}\n      …{h['context']!r}")
    t = report["throughput"]
    print(
        f"3. throughput, one core: {t['events_per_s']:,.0f} events/s wall-clock, "
        f"{t['events_per_cpu_s']:,.0f} events per CPU-second ({t['mb_per_s']:.1f} MB/s wall-clock; "
        f"{t['events']} events of {t['mean_chars']:.0f} chars on average)"
    )
    print("4. generated credentials, recall per kind:")
    for kind, g in report["generated"].items():
        print(f"   {kind:22s} {g['caught']:4d}/{g['cases']:<4d} {g['recall']:.3f}")
        for miss in g["misses"]:
            print(f"      miss: {miss[:200]!r}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
