"""Credential redaction (ctxsearch.domain.redact).

No list of known test secrets: every credential is generated afresh on each run (right prefix,
alphabet and length), embedded in realistic agent output, and must be gone afterwards while the
text around it stays. The seed is in each failure message (REDACT_SEED=<n> reruns it).
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import string
import time
from collections import Counter
from collections.abc import Callable

import pytest

from ctxsearch.domain.redact import REDACTED, Redaction, redact_text, redact_value, strip_private

SEED = int(os.environ.get("REDACT_SEED") or secrets.randbits(32))
AN = string.ascii_letters + string.digits
URLSAFE = AN + "-_"
B64 = AN + "+/"
HEX = "0123456789abcdef"
UPPER = string.ascii_uppercase + string.digits


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    return random.Random(f"{SEED}:{request.node.name}")


def r(alphabet: str, n: int, rng: random.Random) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def password(rng: random.Random, symbols: str = "!#%^*_~+") -> str:
    """Human-style: letters and digits with a symbol, 9 to 15 characters."""
    chars = list(r(AN, rng.randint(7, 12), rng) + rng.choice(symbols) + str(rng.randint(0, 99)))
    rng.shuffle(chars)
    return "".join(chars)


def jwt(rng: random.Random) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": str(rng.randrange(10**9)), "exp": rng.randrange(10**9, 2 * 10**9)}).encode())
    return f"{header}.{payload}.{b64url(rng.randbytes(32))}"


def pem(rng: random.Random, label: str = "RSA PRIVATE KEY", headers: str = "") -> str:
    body = base64.b64encode(rng.randbytes(rng.choice((300, 1190)))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n{headers}{lines}\n-----END {label}-----"


def check(secret: str, out: Redaction) -> None:
    """The secret is nowhere in the result (also not JSON-escaped)."""
    assert secret not in json.dumps(out.value) and secret not in str(out.value), f"seed {SEED}: leaked {secret!r}"


# ---------------------------------------------------------------------------------------------
# tokens that name themselves: (kind of mark expected, generator)

TOKENS: dict[str, tuple[str, Callable[[random.Random], str]]] = {
    "aws_access_key_id": ("aws", lambda g: g.choice(("AKIA", "ASIA")) + r(UPPER, 16, g)),
    "github_classic": ("github", lambda g: g.choice(("ghp_", "gho_", "ghu_", "ghs_", "ghr_")) + r(AN, 36, g)),
    "github_fine_grained": ("github", lambda g: "github_pat_" + r(AN, 22, g) + "_" + r(AN, 59, g)),
    "openai_legacy": ("openai", lambda g: "sk-" + r(AN, 20, g) + "T3BlbkFJ" + r(AN, 20, g)),
    "openai_project": ("openai", lambda g: "sk-proj-" + r(URLSAFE, 156, g)),
    "openai_service_account": ("openai", lambda g: "sk-svcacct-" + r(URLSAFE, 120, g)),
    "anthropic": ("anthropic", lambda g: "sk-ant-api03-" + r(URLSAFE, 93, g) + "AA"),
    "slack_bot": (
        "slack",
        lambda g: f"xoxb-{g.randrange(10**10, 10**11)}-{g.randrange(10**12, 10**13)}-{r(AN, 24, g)}",
    ),
    "slack_user": (
        "slack",
        lambda g: f"xoxp-{g.randrange(10**10, 10**11)}-{g.randrange(10**10, 10**11)}-{r(HEX, 32, g)}",
    ),
    "stripe_live": ("stripe", lambda g: g.choice(("sk_live_", "rk_live_")) + r(AN, g.choice((24, 99)), g)),
    "stripe_test": ("stripe", lambda g: "sk_test_" + r(AN, 99, g)),
    "stripe_webhook": ("stripe", lambda g: "whsec_" + r(AN, 32, g)),
    "google_api_key": ("google", lambda g: "AIza" + r(URLSAFE, 35, g)),
    "google_oauth_client_secret": ("google", lambda g: "GOCSPX-" + r(URLSAFE, 28, g)),
    "google_access_token": ("google", lambda g: "ya29." + r(URLSAFE, 150, g)),
    "jwt": ("jwt", jwt),
    "npm": ("npm", lambda g: "npm_" + r(AN, 36, g)),
    "gitlab": ("gitlab", lambda g: "glpat-" + r(URLSAFE, 20, g)),
    "huggingface": ("huggingface", lambda g: "hf_" + r(string.ascii_letters, 34, g)),
    "sendgrid": ("sendgrid", lambda g: "SG." + r(URLSAFE, 22, g) + "." + r(URLSAFE, 43, g)),
    "pypi": ("pypi", lambda g: "pypi-AgEIcHlwaS5vcmc" + r(URLSAFE, 100, g)),
}

# (template, text that must survive) — {s} is the secret
TOKEN_CONTEXTS = {
    "export": ("$ export API_CREDENTIAL={s}\n$ python run.py\nstarted", "$ export API_CREDENTIAL="),
    "dotenv": ("$ cat .env\nDEBUG=true\nSERVICE_TOKEN={s}\nLOG_LEVEL=info\n", "LOG_LEVEL=info"),
    "json": ('{{\n  "name": "deploy",\n  "credential": "{s}",\n  "retries": 3\n}}', '"retries": 3'),
    "curl": ("$ curl -sS -H 'Authorization: Bearer {s}' https://api.example.com/v1/me", "Authorization: Bearer "),
    "traceback": (
        'Traceback (most recent call last):\n  File "/app/client.py", line 41, in login\n'
        "    raise AuthError(f'rejected: {s}')\nAuthError: rejected: {s}\n",
        'File "/app/client.py", line 41, in login',
    ),
    "git_remote": (
        "$ git remote -v\norigin\thttps://oauth2:{s}@git.example.com/team/repo.git (fetch)\n",
        "@git.example.com/team/repo.git (fetch)",
    ),
    "python": ("client = Client(\n    key='{s}',\n    timeout=30,\n)", "timeout=30"),
    "log": ("2025-01-02T03:04:05Z DEBUG using credential {s} for upload", "for upload"),
}


@pytest.mark.parametrize("context", sorted(TOKEN_CONTEXTS))
@pytest.mark.parametrize("name", sorted(TOKENS))
def test_self_identifying_tokens_are_redacted(name: str, context: str, rng: random.Random) -> None:
    kind, gen = TOKENS[name]
    secret = gen(rng)
    template, survives = TOKEN_CONTEXTS[context]
    text = template.format(s=secret)
    out = redact_text(text)
    check(secret, out)
    assert survives in out.value
    assert REDACTED.format(kind=kind) in out.value, out.value
    assert out.counts[kind] >= 1


@pytest.mark.parametrize("name", sorted(TOKENS))
def test_tokens_in_a_raw_transcript_line(name: str, rng: random.Random) -> None:
    """A Claude Code transcript line redacted as raw text: the secret sits after a JSON \\n."""
    kind, gen = TOKENS[name]
    secret = gen(rng)
    output = f"\nCREDENTIAL={secret}\n"
    line = json.dumps({"type": "user", "message": {"content": [{"type": "tool_result", "content": output}]}})
    check(secret, redact_text(line))
    check(secret, redact_value(json.loads(line)))


def test_replacement_keeps_the_variable_name(rng: random.Random) -> None:
    key = "sk-proj-" + r(URLSAFE, 156, rng)
    assert redact_text(f"export OPENAI_API_KEY={key}").value == "export OPENAI_API_KEY=[REDACTED:openai]"


def test_slack_webhook_keeps_the_host(rng: random.Random) -> None:
    path = f"T{r(UPPER, 10, rng)}/B{r(UPPER, 10, rng)}/{r(AN, 24, rng)}"
    out = redact_text(f"SLACK_WEBHOOK_URL=https://hooks.slack.com/services/{path}")
    assert out.value == "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/[REDACTED:slack]"


# ---------------------------------------------------------------------------------------------
# credentials known by their context


def test_aws_secret_access_key(rng: random.Random) -> None:
    key_id, secret = "AKIA" + r(UPPER, 16, rng), r(B64, 40, rng)
    text = f"$ cat ~/.aws/credentials\n[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
    out = redact_text(text)
    check(key_id, out)
    check(secret, out)
    assert "aws_secret_access_key = [REDACTED:aws]" in out.value
    assert out.counts["aws"] == 2
    quoted = redact_text(f'boto3.client("s3", aws_secret_access_key="{secret}")')
    assert quoted.value == 'boto3.client("s3", aws_secret_access_key="[REDACTED:aws]")'


@pytest.mark.parametrize(
    "template, expected",
    [
        ("postgres://app:{pw}@db.internal:5432/app", "postgres://app:[REDACTED:password]@db.internal:5432/app"),
        (
            "https://deploy:{pw}@git.example.com/org/repo.git",
            "https://deploy:[REDACTED:password]@git.example.com/org/repo.git",
        ),
        ("redis://:{pw}@cache:6379/0", "redis://:[REDACTED:password]@cache:6379/0"),
        ("mongodb+srv://admin:{pw}@cluster0.x.mongodb.net/?retryWrites=true", None),
        (
            "jdbc:mysql://db/app?user=app&password={pw}&useSSL=true",
            "jdbc:mysql://db/app?user=app&password=[REDACTED:password]&useSSL=true",
        ),
        (
            "Server=tcp:sql,1433;Database=app;User ID=svc;Password={pw};Encrypt=True;",
            "Server=tcp:sql,1433;Database=app;User ID=svc;Password=[REDACTED:password];Encrypt=True;",
        ),
        (
            "Data Source=db;Initial Catalog=x;User Id=sa;Pwd={pw};",
            "Data Source=db;Initial Catalog=x;User Id=sa;Pwd=[REDACTED:password];",
        ),
        (
            "$ curl -u deploy:{pw} https://api.example.com",
            "$ curl -u deploy:[REDACTED:password] https://api.example.com",
        ),
    ],
)
def test_password_part_of_urls_and_connection_strings(template: str, expected: str | None, rng: random.Random) -> None:
    pw = password(rng)
    out = redact_text(template.format(pw=pw))
    check(pw, out)
    if expected is not None:
        assert out.value == expected
    assert out.counts["password"] == 1


def test_connection_string_in_a_traceback(rng: random.Random) -> None:
    pw = password(rng)
    text = (
        "Traceback (most recent call last):\n"
        '  File "/app/db.py", line 12, in connect\n'
        "    engine.connect()\n"
        'sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection to server at "db" failed\n'
        f"(Background on this error at: postgresql+psycopg://app:{pw}@db:5432/app)\n"
    )
    out = redact_text(text)
    check(pw, out)
    assert "postgresql+psycopg://app:[REDACTED:password]@db:5432/app" in out.value
    assert 'File "/app/db.py", line 12, in connect' in out.value


@pytest.mark.parametrize("scheme", ["Bearer", "Basic", "Token", "bearer"])
@pytest.mark.parametrize(
    "template",
    [
        "$ curl -H 'Authorization: {scheme} {cred}' https://api.example.com",
        "> GET /v1 HTTP/1.1\n> Host: api\n> authorization: {scheme} {cred}\n> Accept: */*",
        "headers = {{'Proxy-Authorization': '{scheme} {cred}'}}",
    ],
    ids=["curl", "http_trace", "python_dict"],
)
def test_authorization_headers(scheme: str, template: str, rng: random.Random) -> None:
    cred = base64.b64encode(f"deploy:{password(rng)}".encode()).decode() if scheme == "Basic" else r(URLSAFE, 40, rng)
    out = redact_text(template.format(scheme=scheme, cred=cred))
    check(cred, out)
    assert f"{scheme} [REDACTED:" in out.value and "uthorization" in out.value


@pytest.mark.parametrize(
    "template",
    [
        "export CLIENT_SECRET={s}",
        "SECRET_KEY={s}",
        "  api_key: {s}",
        '{{"access_token": "{s}"}}',
        "PRIVATE_KEY = '{s}'",
        'self.session_token = "{s}"',
        "$ ./deploy --api-key {s} --region eu-west-1",
        "$ ./deploy --auth-token={s}",
        "X-Api-Key: {s}",
        'credentials = "{s}"',
        '    client_secret: str = "{s}"',
        "ENCRYPTION_KEY={s}",
    ],
)
@pytest.mark.parametrize("alphabet", ["alnum", "hex", "urlsafe", "base64"])
def test_high_entropy_values_assigned_to_secret_names(template: str, alphabet: str, rng: random.Random) -> None:
    chars = {"alnum": AN, "hex": HEX, "urlsafe": URLSAFE, "base64": B64}[alphabet]
    secret = r(chars, rng.randint(32, 64), rng)  # shorter random values are missed more often: see looks_random
    text = template.format(s=secret)
    out = redact_text(text)
    check(secret, out)
    assert "[REDACTED:" in out.value
    assert out.value.split("[REDACTED:")[0] == text.split(secret)[0], "the name and operator stay"


@pytest.mark.parametrize(
    "template",
    [
        "$ cat .env\nDB_PASSWORD={pw}\n",
        "database:\n  password: {pw}\n  host: db\n",
        '{{"password": "{pw}", "user": "app"}}',
        "export PGPASSWORD='{pw}'",
        "$ mysql --password={pw} -h db",
        "SMTP_PASS={pw}",
        "export db_password={pw}",
        "app.datasource.password={pw}",
        "$ kubectl create secret generic db --from-literal=password={pw}",
        "<settings><server><id>nexus</id><password>{pw}</password></server></settings>",
        "$ cat ~/.netrc\nmachine api.example.com\n  login deploy\n  password {pw}\n",
        "$ mysql -h db -u root -p{pw} app",
        "$ redis-cli -h cache -a {pw} ping",
        "$ sshpass -p '{pw}' ssh deploy@host",
        "$ docker login -u deploy -p {pw} registry.example.com",
        'TF_VAR_db_password="{pw}" terraform apply',
    ],
)
def test_human_passwords_assigned_to_password_names(template: str, rng: random.Random) -> None:
    pw = password(rng)
    out = redact_text(template.format(pw=pw))
    check(pw, out)
    assert out.counts["password"] == 1


def test_ini_password_with_spaces(rng: random.Random) -> None:
    """`password = value` reads as code too; a value no expression looks like is a literal.
    (So an INI password of letters, digits and underscores only is left: documented limit.)"""
    pw = password(rng, symbols="!#%^*~+@")
    out = redact_text(f"[database]\nhost = db\npassword = {pw}\n")
    assert out.value == "[database]\nhost = db\npassword = [REDACTED:password]\n"


@pytest.mark.parametrize("label", ["RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY"])
def test_private_key_blocks_go_whole(label: str, rng: random.Random) -> None:
    block = pem(rng, label)
    out = redact_text(f"$ cat ~/.ssh/id_key\n{block}\n$ ls -la ~/.ssh\ntotal 16")
    assert out.value == "$ cat ~/.ssh/id_key\n[REDACTED:private_key]\n$ ls -la ~/.ssh\ntotal 16"
    assert out.counts == Counter(private_key=1)


def test_encrypted_pem_and_json_escaped_pem(rng: random.Random) -> None:
    headers = f"Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,{r(HEX, 32, rng).upper()}\n\n"
    block = pem(rng, "RSA PRIVATE KEY", headers)
    assert redact_text(block).value == "[REDACTED:private_key]"
    service_account = json.dumps({"type": "service_account", "private_key": pem(rng, "PRIVATE KEY") + "\n"})
    out = redact_text(service_account)  # the block is one line with \n escapes
    assert json.loads(out.value) == {"type": "service_account", "private_key": "[REDACTED:private_key]\n"}


def test_truncated_private_key_loses_its_key_lines(rng: random.Random) -> None:
    block = pem(rng, "OPENSSH PRIVATE KEY")
    cut = block[: len(block) // 2]
    out = redact_text(f"$ head -c {len(cut)} id_ed25519\n{cut}")
    for line in cut.splitlines()[1:]:
        assert line not in out.value
    assert out.value.startswith(f"$ head -c {len(cut)} id_ed25519\n[REDACTED:private_key]")


# ---------------------------------------------------------------------------------------------
# no false positives on ordinary agent output

GIT_LOG = """$ git log -3 --format='%H %an %s'
{h1} Jane Doe Fix token refresh when the session expires
{h2} John Roe Add test_password_reset_sends_email
{h3} Jane Doe Merge pull request #1234 from org/feature/auth-cleanup
$ git show --stat {h1}
commit {h1}
Author: Jane Doe <jane@example.com>
Date:   Tue Jan 2 10:00:00 2024 +0000
 src/auth/tokens.py | 12 ++++++------
"""
PIP_FREEZE = """$ pip install -r requirements.txt --require-hashes
requests==2.31.0 \\
    --hash=sha256:{d1} \\
    --hash=sha256:{d2}
urllib3==2.0.7 --hash=sha256:{d3}
"integrity": "sha512-{b1}=="
docker pull python@sha256:{d1}
"""
PYTEST = """============================= test session starts ==============================
platform linux -- Python 3.11.6, pytest-8.0.0, pluggy-1.4.0
collected 6 items

tests/test_auth.py::test_token_refresh PASSED                              [ 16%]
tests/test_auth.py::test_password_hashing PASSED                           [ 33%]
tests/test_auth.py::TestSecretStore::test_get_secret FAILED                [ 50%]
tests/test_auth.py::test_api_key_header_is_sent PASSED                     [ 66%]

=================================== FAILURES ===================================
_________________________ TestSecretStore.test_get_secret ______________________

self = <tests.test_auth.TestSecretStore object at 0x7f3a2b1c4d50>

    def test_get_secret(self):
        store = SecretStore(backend=self.backend)
>       assert store.get("db") == expected_secret
E       AssertionError: assert None == 'expected'
E        +  where None = <bound method SecretStore.get of <auth.SecretStore object at 0x7f3a2b1c4e10>>('db')

tests/test_auth.py:42: AssertionError
PASS: .a/foo.py was ignored
=========================== short test summary info ============================
FAILED tests/test_auth.py::TestSecretStore::test_get_secret - AssertionError
========================= 1 failed, 3 passed in 0.42s ==========================
"""
TRACEBACK = """Traceback (most recent call last):
  File "/usr/lib/python3.11/site-packages/requests/sessions.py", line 589, in request
    resp = self.send(prep, **send_kwargs)
  File "/usr/lib/python3.11/site-packages/requests/auth.py", line 97, in __call__
    r.headers['Authorization'] = _basic_auth_str(self.username, self.password)
  File "/usr/lib/python3.11/site-packages/requests/auth.py", line 60, in _basic_auth_str
    authstr = 'Basic ' + to_native_string(b64encode(b':'.join((username, password))).strip())
TypeError: sequence item 1: expected a bytes-like object, NoneType found
"""
CODE = """def login(self, username: str, password: str | None = None, token=None) -> Session:
    password = os.environ["PASSWORD"]
    password = password or None
    api_key = self.api_key
    token = token
    secret_key = settings.SECRET_KEY
    auth = HTTPBasicAuth(username, password)
    headers = {"Authorization": f"Bearer {token}", "X-Api-Key": api_key}
    headers["Authorization"] = "Bearer " + token
    if not password:
        raise ValueError("password must not be empty")
    client = OpenAI(api_key=os.getenv("OPENAI_API_KEY"), max_tokens=4096)
    tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
    TOKEN_URL = "https://oauth2.googleapis.com/token"
    password_file = "/run/secrets/db_password"
    token_type: str = "bearer"
    return self._session(auth=auth, password=password, verify=True)
"""
PLACEHOLDERS = """export GITHUB_TOKEN=<your-token>
export OPENAI_API_KEY="sk-..."
API_KEY=${API_KEY}
SECRET_KEY=$SECRET_KEY
TOKEN=xxxxxxxxxxxxxxxx
password: changeme
DB_PASSWORD=password
Authorization: Bearer <token>
Authorization: Bearer $TOKEN
curl -H "Authorization: token $GITHUB_TOKEN" https://api.github.com/user
GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}
url = "postgres://user:password@localhost:5432/db"
url = f"https://{user}:{password}@{host}/"
token = "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
"api_key": "YOUR_API_KEY_HERE"
password=None
token=token
"""
MISC = """$ docker ps
CONTAINER ID   IMAGE          COMMAND                  STATUS
3f2a9c1b7d4e   postgres:16    "docker-entrypoint.s…"   Up 2 hours
$ ls src/ctxsearch/very_long_module_name_for_secret_rotation_and_token_refresh_handling.py
SomeVeryLongCamelCaseClassNameForTokenRefreshHandler
test_foo_bar_baz_with_a_really_long_name_about_passwords
https://github.com/pytest-dev/pytest/pull/11234#issuecomment-1234567890
http://localhost:8000/api/v1/search?q=token&limit=10
git@github.com:org/repo.git
ssh://git@github.com:22/org/repo.git
PWD=/home/dev/src/project
OLDPWD=/home/dev
"""


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        h1=r(HEX, 40, rng),
        h2=r(HEX, 40, rng),
        h3=r(HEX, 40, rng),
        d1=r(HEX, 64, rng),
        d2=r(HEX, 64, rng),
        d3=r(HEX, 64, rng),
        b1=base64.b64encode(rng.randbytes(60)).decode().rstrip("="),
    )


def uuid_list(rng: random.Random) -> str:
    import uuid

    return "\n".join(f"{i}\t{uuid.UUID(int=rng.getrandbits(128), version=4)}" for i in range(20))


def base64_fixture(rng: random.Random) -> str:
    blob = base64.b64encode(rng.randbytes(300)).decode()
    return f'PNG_FIXTURE = (\n    "{blob[:76]}"\n    "{blob[76:152]}"\n)\nassert base64.b64decode(PNG_FIXTURE)\n{blob}'


ORDINARY: dict[str, Callable[[random.Random], str]] = {
    "git_log": lambda g: _fill(GIT_LOG, g),
    "pip_hashes": lambda g: _fill(PIP_FREEZE, g),
    "pytest": lambda g: PYTEST,
    "traceback": lambda g: TRACEBACK,
    "code_references": lambda g: CODE,
    "placeholders": lambda g: PLACEHOLDERS,
    "misc": lambda g: MISC,
    "uuids": uuid_list,
    "base64": base64_fixture,
}


@pytest.mark.parametrize("name", sorted(ORDINARY))
def test_no_false_positives_on_ordinary_output(name: str, rng: random.Random) -> None:
    text = ORDINARY[name](rng)
    out = redact_text(text)
    assert out.total == 0 and out.value == text, f"seed {SEED}: {out.counts} in\n{out.value}"


@pytest.mark.parametrize("line", [line for line in PLACEHOLDERS.splitlines() if line])
def test_placeholders_one_per_line(line: str) -> None:
    """Decided: placeholders (<…>, ${…}, $VAR, xxxx, sk-..., changeme, 'password') are no secrets."""
    assert redact_text(line).value == line


@pytest.mark.parametrize(
    "text",
    [
        "def f(credentials: UsernamePasswordCredentials, token: str | None = None): ...",
        "self.embed_tokens = GemmaTextScaledWordEmbedding(config.vocab_size)",
        "headers = {'x-amz-date': timestamp, 'Authorization': v4auth_header}",
        'publicKeyToken="6595b64144ccf1df"',
        "ssh://6834bb82d2a1e4de5e8e4b51@ssh.hf.jobs",
        "machine learning password for the account",
        "password = hunter2",  # in code an unquoted value is an expression (in .env it is a literal)
        "PASS: test_login.py::test_password_reset",
        "Basic usage: mysql -u root -p mydb; docker run -p 8080:80 nginx",
        "Basic dXNlcjpwYXNz",  # user:pass, a placeholder password
        "version_pass = '%d.%d.%d' % ver",
        "const password = 'Password used to generate key';",
        "env['PWD'] = self.cwd",
        "    PQencryptPasswordConn = pq.PQencryptPasswordConn",
        "using PassThrough = ck::tensor_operation::element_wise::PassThrough;",
        "#password_encryption = scram-sha-256",
        "        per_token_cast_to_fp8=per_token_cast_to_fp8,",
        "    password=self.password,",
        "password=args.password",
    ],
)
def test_no_false_positives_on_code_shapes(text: str) -> None:
    assert redact_text(text).value == text


def test_documented_example_credentials_are_still_redacted() -> None:
    """Decided: a key in the right format is redacted even if it is AWS's documentation example."""
    assert redact_text("AKIAIOSFODNN7EXAMPLE").value == "[REDACTED:aws]"


# ---------------------------------------------------------------------------------------------
# JSON values


def test_redact_value_nested_json(rng: random.Random) -> None:
    openai, pw, gh = "sk-proj-" + r(URLSAFE, 156, rng), password(rng), "ghp_" + r(AN, 36, rng)
    bearer, pem_block = r(URLSAFE, 40, rng), pem(rng)
    value = {
        "env": {"OPENAI_API_KEY": openai, "DB_PASSWORD": pw, "PATH": "/usr/bin:/bin"},
        gh: {"note": "a token used as a key"},
        "headers": [{"Authorization": f"Bearer {bearer}"}, {"Accept": "application/json"}],
        "command": f"git push https://x:{gh}@github.com/o/r.git",
        "files": [{"path": "id_rsa", "content": pem_block}],
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "missing": None,
        7: "int key",
    }
    original = json.dumps(value, sort_keys=False, default=str)
    out = redact_value(value)
    dumped = json.dumps(out.value, default=str)
    for s in (openai, pw, gh, bearer, *pem_block.splitlines()[1:-1]):
        assert s not in dumped, f"seed {SEED}: leaked {s!r}"
    assert json.dumps(value, default=str) == original, "the input is not modified"
    v = out.value
    assert v["env"] == {
        "OPENAI_API_KEY": "[REDACTED:openai]",
        "DB_PASSWORD": "[REDACTED:password]",
        "PATH": "/usr/bin:/bin",
    }
    assert v["[REDACTED:github]"] == {"note": "a token used as a key"}
    assert v["headers"] == [{"Authorization": "Bearer [REDACTED:authorization]"}, {"Accept": "application/json"}]
    assert v["command"] == "git push https://x:[REDACTED:github]@github.com/o/r.git"
    assert v["files"] == [{"path": "id_rsa", "content": "[REDACTED:private_key]"}]
    assert (v["count"], v["ratio"], v["ok"], v["missing"], v[7]) == (3, 0.5, True, None, "int key")
    assert out.counts == Counter(openai=1, password=1, github=2, authorization=1, private_key=1)
    assert out.total == 6


def test_redact_value_keeps_colliding_keys(rng: random.Random) -> None:
    a, b = "ghp_" + r(AN, 36, rng), "ghp_" + r(AN, 36, rng)
    out = redact_value({a: 1, b: 2})
    assert sorted(out.value.values()) == [1, 2] and out.counts["github"] == 2


@pytest.mark.parametrize("value", [None, 0, 1.5, True, [], {}, "", [1, "two", None]])
def test_redact_value_leaves_plain_values(value: object) -> None:
    out = redact_value(value)
    assert out.value == value and out.total == 0


# ---------------------------------------------------------------------------------------------
# <private> spans


@pytest.mark.parametrize(
    "text, expected, spans",
    [
        ("before <private>my secret</private> after", "before  after", 1),
        ("a <PRIVATE>x</Private> b <private>y\nz</private> c", "a  b  c", 2),
        ("line 1\n<private>\nline 2\nline 3\n</private>\nline 4", "line 1\n\nline 4", 1),
        ("keep this <private>drop this\nand all the rest", "keep this ", 1),
        ("a <private>x <private>nested</private> y</private> b", "a  b", 1),
        ("no tags here", "no tags here", 0),
    ],
)
def test_private_spans_are_dropped(text: str, expected: str, spans: int) -> None:
    assert strip_private(text) == expected
    out = redact_text(text)
    assert out.value == expected and out.counts["private"] == spans


def test_secrets_inside_private_spans_count_as_private(rng: random.Random) -> None:
    gh = "ghp_" + r(AN, 36, rng)
    out = redact_text(f"ok <private>GITHUB_TOKEN={gh}</private>")
    assert out.value == "ok " and out.counts == Counter(private=1)


# ---------------------------------------------------------------------------------------------
# idempotency, robustness, speed


def _all_samples(rng: random.Random) -> list[str]:
    samples = [ORDINARY[n](rng) for n in ORDINARY]
    for _kind, gen in TOKENS.values():
        for template, _survives in TOKEN_CONTEXTS.values():
            samples.append(template.format(s=gen(rng)))
    samples += [
        f"postgres://u:{password(rng)}@h/db",
        f"Password={password(rng)};",
        pem(rng),
        f"Authorization: Basic {base64.b64encode(b'u:' + password(rng).encode()).decode()}",
        f"export CLIENT_SECRET={r(AN, 40, rng)}",
        "<private>x</private> tail",
    ]
    return samples


def test_idempotent(rng: random.Random) -> None:
    for text in _all_samples(rng):
        once = redact_text(text)
        twice = redact_text(once.value)
        assert twice.value == once.value and twice.total == 0, f"seed {SEED}: {text!r} -> {once.value!r}"
        again = redact_value({"k": once.value, once.value: [once.value]})
        assert again.total == 0


@pytest.mark.parametrize(
    "text",
    [
        "\ud800",
        "\udfff lone low surrogate AKIA\ud800",
        "token=\ud800\ud800\ud800\ud800\ud800\ud800\ud800\ud800\ud800\ud800\ud800\ud800\ud800\ud800\ud800\ud800",
        "\x00\x01\x02 binary \xff\xfe" + bytes(range(256)).decode("latin-1"),
        "İİİ password=İİİİİİİİ secret_key='İ1İ2İ3İ4İ5İ6İ7İ8İ9' ",
        "emoji 🔑 API_TOKEN=🔑🔑🔑 ghp_🔑",
        "",
        "<private",
        "</private>",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "://:@",
        "Authorization:",
        "eyJ.eyJ.",
    ],
)
def test_never_raises(text: str) -> None:
    out = redact_text(text)
    assert isinstance(out.value, str)
    redact_value({text: [text, {text: text}]})


def test_surrogates_around_a_secret(rng: random.Random) -> None:
    gh = "ghp_" + r(AN, 36, rng)
    out = redact_text(f"\ud800 GITHUB_TOKEN={gh} \udfff")
    assert out.value == "\ud800 GITHUB_TOKEN=[REDACTED:github] \udfff"


def test_huge_input(rng: random.Random) -> None:
    gh = "ghp_" + r(AN, 36, rng)
    chunk = PYTEST + _fill(GIT_LOG, rng)
    text = chunk * (5_000_000 // len(chunk)) + f"GITHUB_TOKEN={gh}\n"
    start = time.process_time()
    out = redact_text(text)
    assert gh not in out.value and out.counts == Counter(github=1)
    assert time.process_time() - start < 5


MB = 1_000_000
# Inputs built to make a careless regex backtrack (rescans from every start, nested repeats).
ADVERSARIAL = {
    "letters": "a" * MB,
    "token_chars": "aB3-_" * (MB // 5),
    "repeated_prefixes": "AKIAghp_sk-eyJxoxb-glpat-" * (MB // 26),
    "jwt_without_dot": "eyJ" * (MB // 3),
    "jwt_segments": ("eyJ" + "a" * 50 + ".") * (MB // 54),
    "url_scheme": "://a:" * (MB // 5),
    "pem_headers": "-----BEGIN PRIVATE KEY-----" * (MB // 27),
    "pem_no_end": "-----BEGIN PRIVATE KEY-----\n" + ("A" * 64 + "\n") * (MB // 65),
    "private_tags": "<private " * (MB // 9),
    "keywords": "tokenpasswordsecretkeyauth" * (MB // 26) + "=x",
    "assignments": "token=" * (MB // 6),
    "long_name": "secret" + "_" * MB + "=x",
    "slack_digits": "xoxb-" + "1" * MB,
    "authorization": "Authorization: " * (MB // 15),
    "ado": ";Password=" * (MB // 10),
    "aws": "aws" * (MB // 3),
    "mysql": "mysql -u " * (MB // 9),
    "escapes": "\\n" * (MB // 2),
    "quotes": "'\"" * (MB // 2),
    "random_printable": "".join(random.Random(0).choice(string.printable) for _ in range(MB)),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_linear_time_on_adversarial_lines(name: str) -> None:
    text = ADVERSARIAL[name]
    start = time.process_time()
    redact_text(text)
    assert time.process_time() - start < 1.0


@pytest.mark.parametrize(
    "text",
    ["Password=x;" * (MB // 11), "curl " + "-u a:b " * (MB // 7), "password: str" * (MB // 13)],
    ids=["ado-passwords", "curl-users", "annotations"],
)
def test_dense_matches_stay_linear(text: str) -> None:
    """A megabyte that is nothing but credentials: ~100,000 replacements, each some Python work,
    so the bound is looser than for the inputs above."""
    start = time.process_time()
    redact_text(text)
    assert time.process_time() - start < 2.0


def test_api_shape() -> None:
    assert REDACTED == "[REDACTED:{kind}]"
    out = redact_text("nothing to see")
    assert isinstance(out, Redaction) and out.value == "nothing to see" and out.total == 0
    assert Redaction("x", Counter(a=2, b=1)).total == 3
