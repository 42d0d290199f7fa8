"""Credential redaction: every write path runs event text through here before it is stored.

A secret found becomes ``[REDACTED:<kind>]`` in place; the text around it (the variable name,
``Authorization: Bearer``, the URL's host) stays, so the event is still readable and searchable.
``<private>…</private>`` spans are dropped first, private key blocks next, then fixed-format
tokens, then credentials known by their context (URL userinfo, Authorization headers, connection
strings, .netrc, <password> elements, the password flags of a few clients), and last literals
assigned to secret-sounding names: high-entropy ones, or for password names any that is not a
plain word, placeholder or code reference.

From ``detect-secrets`` (Yelp): the regexes of its AWS (key id, and secret key near "aws…key"),
Slack, GitLab, SendGrid, Twilio, PyPI, Square, Azure storage and Mailchimp plugins, its JWT
validator and its keyword list. Formats it lacks or gets too short have patterns of our own,
each saying why. Its per-line scanning machinery is not used: it is far too slow for ingest.

Linear time: each pattern starts on a literal or a boundary its own body cannot extend,
quantifiers are bounded or possessive, and the scanners written out here skip what they have
looked at. Nothing here raises on any ``str``.
"""

from __future__ import annotations

import base64
import functools
import math
import re
import string
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import DENYLIST as KEYWORD_DENYLIST
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

REDACTED = "[REDACTED:{kind}]"
_MARK = "[REDACTED:"


@functools.cache
def _mark(kind: str) -> str:
    return REDACTED.format(kind=kind)


@dataclass
class Redaction:
    """The cleaned text or JSON value, and how many secrets of each kind were replaced."""

    value: Any
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# ---------------------------------------------------------------------------------------------
# value tests

_RUN = re.compile(r"(.)\1{5}")  # xxxxxx, 000000, ******: a placeholder, not a random token
# The 170 most common letter pairs in the words of Python's standard library source, and a few
# more: names made of words are mostly these pairs, random tokens mostly not.
_COMMON_BIGRAMS = frozenset(
    """ab ac ad ag ai al am an ap ar as at au ba be bj bl bu ca ce ch ci ck cl co cr ct da de di do ds
    du ea ec ed ee ef el em en ep er es et ex ey fa ff fi fo fr fu ge gs ha he hi ho ic id ie if ig
    il im in io ip ir is it iv iz ke la ld le lf li ll lo ls lt lu ly ma me mi mo mp na nc nd ne ng
    ni no ns nt nu ob oc od ol om on op or os ot ou ow pa pe pl po pp pr pt ra re rg ri rm rn ro rr
    rs rt ru ry sa se sh si so sp ss st su sy ta te th ti to tr ts tt tu ty ue ul um un up ur us ut
    va ve wa wh wi xc xt yp yt ze""".split()
) | {"wo", "rd", "sw", "nn", "oo", "ok", "ke"}  # and this domain's words: password, token, conn
_CHUNK = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_HEX_LETTERS = re.compile(r"[a-f]+")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_PLACEHOLDERS = frozenset(
    """none null nil true false undefined empty blank required optional str string bytes int any
    changeme change_me changeit password passwd pass pwd secret secrets token apikey api_key key
    example placeholder redacted hidden masked dummy fake test testing foo bar baz todo tbd
    n/a na xxx""".split()
)
_PLACEHOLDER_PARTS = ("example", "placeholder", "redacted", "changeme", "${", "$(", "{{")
_PLACEHOLDER_MARKS = ("xxxx", "XXXX", "****", "...")  # case-sensitive: "xXxX" can be random


def entropy(s: str) -> float:
    """Shannon entropy in bits per character over the characters actually present.

    detect-secrets' own helper counts only the characters of one fixed charset (hex or base64),
    so a value mixing punctuation in scores low there; this counts every character.
    """
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


# Templates and references standing where a value would: $API_KEY, ${TOKEN}, $(cat f), %s,
# %(password)s, {token}, {{ secrets.X }}, <your-token>, YAML *alias / &anchor, @ref.
_TEMPLATE = re.compile(
    r"\$\{?[A-Za-z_][\w.]*\}?|%(?:\(\w+\))?[sdr]|\{\{?[^{}]*\}\}?|<[^<>]*>|\**"
    r"|[*&@][a-z_][a-z_-]*(?:\.[a-z_]+)*"  # YAML aliases and anchors, @refs: lowercase words
)


def _is_placeholder(v: str) -> bool:
    return _short_placeholder(v) if len(v) <= 64 else _placeholder(v)


@functools.lru_cache(maxsize=4096)
def _short_placeholder(v: str) -> bool:
    # Cached: the same few values (None, ${TOKEN}, changeme) come back again and again.
    if _placeholder(v):
        return True
    # pass%40word, pass:word, P-A-S-S: the same words in disguise
    return "".join(c for c in urllib.parse.unquote(v.lower()) if c.isalnum()) in _PLACEHOLDERS


# A format string holds fields, not a value: '%d.%d.%d' % ver, "{user}:{password}".format(…).
# Two fields at least: one "%d" turns up in random passwords too often.
_FORMAT_FIELD = re.compile(r"%(?:\(\w+\))?[sdr]|\{[\w.]*\}")


def _placeholder(v: str) -> bool:
    low = v.lower()
    if low in _PLACEHOLDERS or _TEMPLATE.fullmatch(v) or _RUN.search(v) or len(_FORMAT_FIELD.findall(v)) >= 2:
        return True
    if any(p in low for p in _PLACEHOLDER_PARTS) or any(p in v for p in _PLACEHOLDER_MARKS):
        return True
    return "your" in low and any(w in low for w in ("token", "key", "pass", "secret"))


def _is_path(v: str) -> bool:
    return v.startswith(("/", "~/", "./", "../")) or (len(v) > 2 and v[1] == ":" and v[2] in "\\/")


def _is_wordy(v: str) -> bool:
    """Made of words (snake_case, kebab-case, CamelCase names, phrases), not random.

    Three quarters of the letter pairs of its longer chunks are common in identifiers, and those
    chunks hold 80% of its letters. Measured: 87% of 16-40 character identifiers from site-packages
    count as words; of random tokens at most 1 in 450 at 16 characters (lowercase and digits; 1 in
    5,000 for mixed case), 1 in 2,500 at 24 and 1 in 10,000 at 32 do.
    """
    letters = sum(c.isalpha() for c in v)
    pairs = common = covered = 0
    for chunk in _CHUNK.findall(v):
        low = chunk.lower()
        if len(low) < 3 or _HEX_LETTERS.fullmatch(low):
            continue  # short or hex-digit runs ("abe", "cafe") say nothing
        covered += len(low)
        pairs += len(low) - 1
        common += sum(low[i : i + 2] in _COMMON_BIGRAMS for i in range(len(low) - 1))
    return pairs >= 8 and covered * 10 >= letters * 8 and common * 4 >= pairs * 3


_SPACE = re.compile(r"\s")


def looks_random(v: str, min_len: int = 16) -> bool:
    """High-entropy token: long, no spaces, mixed character classes, not made of words.

    Judged on the first 256 characters: enough to tell, and it keeps long values cheap.
    """
    if len(v) < min_len:
        return False
    v = v[:256]
    if _SPACE.search(v) or _RUN.search(v):
        return False
    upper = sum(c.isupper() for c in v)
    lower = sum(c.islower() for c in v)
    digit = sum(c.isdigit() for c in v)
    if not upper + lower:
        return False  # digits or punctuation only: numbers, timestamps, rulers
    if not digit:
        # Letters only: random mixed case has about half capitals; CONSTANT_NAMES and snake_case
        # have all or none (CamelCase names are caught as words below).
        if not 0.1 <= upper / (upper + lower) <= 0.9:
            return False
    return not _is_wordy(v) and entropy(v) >= 2.5


_PATHLIKE = re.compile(r"[\w.~-]*(?:/[\w.-]+)+/?|[\w-]+\.(?:py|js|ts|json|ya?ml|toml|txt|cfg|ini|env|md|sh|log)")


def _password_ok(v: str) -> bool:
    """A literal assigned to a password name: short human passwords count, plain words do not."""
    if len(v) < 6 or _SPACE.search(v) or (_PATHLIKE.fullmatch(v) and not looks_random(v)):
        return False
    head = v[:256]
    alpha = any(c.isalpha() for c in head)
    digit = any(c.isdigit() for c in head)
    symbol = any(not c.isalnum() and c != "_" for c in head)
    return (alpha and digit) or (symbol and (alpha or digit)) or looks_random(v)


# ---------------------------------------------------------------------------------------------
# rules
#
# Speed: a regex that starts with a literal (or literals sharing a first character, not wrapped
# in a capturing group) is searched for at memchr-like speed; one that starts with a lookbehind,
# a character class, a capturing group or IGNORECASE is tried at every position, ~50× slower.
# So token rules start with their literal prefixes and check the left boundary afterwards, rules
# sharing a first character are one alternation (the match's prefix tells the kind), and
# case-insensitive rules wait for a trigger substring in the lowercased text.

_Found = tuple[str, int, int]  # kind, start and end of the secret in the text


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    classify: Callable[[re.Match[str], str], _Found | None]
    triggers: tuple[str, ...] = ()  # if set, the regex runs only when one occurs in the lowercased text

    def apply(self, text: str, counts: Counter[str]) -> str:
        if self.regex.search(text) is None:
            return text

        def replace(m: re.Match[str]) -> str:
            found = self.classify(m, text)
            if found is None:
                return m.group(0)
            kind, start, end = found
            counts[kind] += 1
            base = m.start()
            whole = m.group(0)
            return whole[: start - base] + _mark(kind) + whole[end - base :]

        return self.regex.sub(replace, text)


def _bounded(text: str, i: int, chars: frozenset[str]) -> bool:
    """Position i does not continue a run of `chars`, or follows an escape such as \\n."""
    return i == 0 or text[i - 1] not in chars or (i > 1 and text[i - 2] == "\\" and text[i - 1] in "nrt")


_AN = "A-Za-z0-9"
_TOK = "A-Za-z0-9_-"
_AN_SET = frozenset(string.ascii_letters + string.digits)
_TOK_SET = _AN_SET | {"_", "-"}


def _rule(
    kind: str,
    regex: str | re.Pattern[str],
    group: int | str = 0,
    check: Callable[[str], bool] | None = None,
    triggers: tuple[str, ...] = (),
) -> _Rule:
    """One kind; the secret is `group` of the match and must pass `check`."""
    pattern = re.compile(regex) if isinstance(regex, str) else regex

    def classify(m: re.Match[str], text: str) -> _Found | None:
        secret = m.group(group)
        if not secret or _MARK in secret or (check is not None and not check(secret)):
            return None
        return kind, *m.span(group)

    return _Rule(pattern, classify, triggers)


@dataclass(frozen=True)
class _Alt:
    prefix: str  # the match starts with it (tried in order: put longer prefixes first)
    kind: str
    check: Callable[[str], bool] | None = None  # on the part after the prefix
    boundary: frozenset[str] = _TOK_SET  # must not precede the match
    keep_prefix: bool = False  # AccountKey=…: only what follows is secret


def _family(patterns: list[str], alts: list[_Alt]) -> _Rule:
    """Token formats sharing a first character, as one regex; the prefix tells the kind."""

    def classify(m: re.Match[str], text: str) -> _Found | None:
        whole = m.group(0)
        for alt in alts:
            if whole.startswith(alt.prefix):
                body = whole[len(alt.prefix) :]
                if not _bounded(text, m.start(), alt.boundary) or (alt.check is not None and not alt.check(body)):
                    return None
                return alt.kind, m.start() + (len(alt.prefix) if alt.keep_prefix else 0), m.end()
        return None

    return _Rule(re.compile("|".join(patterns)), classify)


def _uncaptured(p: re.Pattern[str]) -> str:
    """A detect-secrets pattern with a leading capturing group made non-capturing, so that it
    keeps the literal-prefix search when joined into an alternation."""
    return "(?:" + p.pattern[1:] if p.pattern.startswith("(") and not p.pattern.startswith("(?") else p.pattern


def _not_run(body: str) -> bool:
    """For fixed-prefix tokens: anything but an obvious placeholder (ghp_xxxxxxxx…)."""
    return not _RUN.search(body)


def _random_body(body: str) -> bool:
    """For short, common prefixes (sk-, hf_): mixed character classes and not made of words."""
    classes = any(c.islower() for c in body) + any(c.isupper() for c in body) + any(c.isdigit() for c in body)
    return classes >= 2 and not _RUN.search(body) and not _is_wordy(body)


def _jwt_ok(token: str) -> bool:
    return JwtTokenDetector.is_formally_valid(token)


_AUTH_SCHEMES = frozenset(
    "bearer basic token bot digest negotiate ntlm apikey api-key key sso-key otp jwt hmac".split()
)


# TOKEN, YOUR_TOKEN, access_token, v4auth_header: names, not values
_ONE_CASE_NAME = re.compile(r"[A-Z_]+|[a-z_]+|[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def _basic_credentials(v: str) -> bool:
    """Whether `v` is base64 of "user:password"."""
    if len(v) % 4 or not _BASE64.fullmatch(v):
        return False
    try:
        text = base64.b64decode(v, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return False
    return ":" in text and text.isprintable()


def _basic_placeholder(v: str) -> bool:
    """Basic credentials ("user:password" in base64) whose password is a placeholder."""
    if len(v) % 4 or not _BASE64.fullmatch(v):
        return False
    try:
        _, sep, pw = base64.b64decode(v, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return bool(sep) and (not pw or _is_placeholder(pw))


def _cred_ok(v: str) -> bool:
    """The credential of an Authorization header: a value, not a name or placeholder."""
    if len(v) < 8 or _is_placeholder(v) or _DOTTED.fullmatch(v) or v.lower() in _AUTH_SCHEMES:
        return False
    if _ONE_CASE_NAME.fullmatch(v):
        return False
    if _basic_placeholder(v):
        return False
    return any(c.isdigit() for c in v) or any(not c.isalnum() for c in v) or v != v.lower()


def _authorization_classify(m: re.Match[str], text: str) -> _Found | None:
    cred = m.group("v")
    if _MARK in cred or not _cred_ok(cred):
        return None
    if m.group("kq") and not m.group("vq") and not m.group("scheme") and not looks_random(cred):
        return None  # {"Authorization": header_value}: a quoted key, an unquoted value is code
    return "authorization", *m.span("v")


def _xml_classify(m: re.Match[str], text: str) -> _Found | None:
    kind = name_kind(m.group("tag"))
    v = m.group("v")
    if kind is None or not _assigned_ok(kind, v, quoted=True, literal=True):
        return None
    return kind, *m.span("v")


def _aws_quoted(m: re.Match[str], text: str) -> _Found | None:
    start = max(0, m.start() - 48)
    near = AWSKeyDetector.denylist[1].search(text, start, m.end())
    if near is None or near.end() != m.end() or _MARK in m.group(0):
        return None
    return "aws", m.start() + 1, m.end() - 1


def _colon_classify(m: re.Match[str], text: str) -> _Found | None:
    """URL credentials, and .npmrc's :_authToken= value (same first character, one regex)."""
    if m.group("npm") is not None:
        v = m.group("npm")
        return None if _is_placeholder(v) else ("npm", *m.span("npm"))
    if m.group("pw") is not None:
        pw = m.group("pw")
        return None if _MARK in pw or _is_placeholder(pw) else ("password", *m.span("pw"))
    tok = m.group("tok")
    if text.endswith("ssh", 0, m.start()):
        return None  # ssh://<user>@host: a user name, often a hex id
    return ("password", *m.span("tok")) if looks_random(tok) else None


# URL userinfo (RFC 3986: unreserved, %-escapes, sub-delims). detect-secrets' BasicAuthDetector
# leaves out the sub-delims (!$&*+=…), which real passwords use. Quotes, brackets, commas and
# semicolons still end it, as they end URLs in code and prose.
_USER = r"[^:/?#\[\]@\s\"'`\\<>{}(),;]{0,256}+"
_PASS = r"[^/?\[\]\s\"'`\\<>{}(),;]{1,512}"  # may hold '@' and '#': the last '@' ends it

_ALNUM_ = _AN_SET | {"_"}
_GITLAB = [_uncaptured(p) for p in GitLabTokenDetector.denylist]

_RULES: tuple[_Rule, ...] = (
    # OpenAI, Anthropic, Stripe secret keys. detect-secrets knows only the legacy OpenAI format
    # (…T3BlbkFJ…), not sk-proj-/sk-svcacct-/sk-admin- nor Anthropic's sk-ant-, and Stripe's
    # (r|s)k_live_ only at exactly 24 characters (current keys run past 100; test-mode keys are
    # secrets too). Any other sk-<long random> is a legacy OpenAI key or an OpenAI-compatible API's.
    _family(
        [
            rf"sk-[{_TOK}]{{20,1024}}",
            rf"sk_(?:live|test)_[{_AN}]{{24,255}}(?![{_AN}])",
            SquareOAuthDetector.denylist[0].pattern,
        ],
        [
            _Alt("sk-ant-", "anthropic", _not_run),
            *(_Alt(f"sk-{p}-", "openai", _not_run) for p in ("proj", "svcacct", "admin", "None")),
            _Alt("sk-", "openai", _random_body),
            _Alt("sk_", "stripe", _not_run, _ALNUM_),
            _Alt("sq0csp-", "square"),
        ],
    ),
    _family([rf"rk_(?:live|test)_[{_AN}]{{24,255}}(?![{_AN}])"], [_Alt("rk_", "stripe", _not_run, _ALNUM_)]),
    _family([rf"whsec_[{_AN}]{{24,255}}(?![{_AN}])"], [_Alt("whsec_", "stripe", _not_run, _ALNUM_)]),
    # GitHub: detect-secrets has the classic prefixes at exactly 36 characters; newer tokens may be
    # longer, and fine-grained tokens (github_pat_) are missing. GitLab: detect-secrets' patterns.
    _family(
        [rf"(?:ghp|gho|ghu|ghs|ghr)_[{_AN}_]{{36,251}}", rf"github_pat_[{_AN}_]{{22,251}}", *_GITLAB[:1], *_GITLAB[2:]],
        [
            *(_Alt(p, "github", _not_run, _ALNUM_) for p in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
            _Alt("gl", "gitlab", _not_run),
        ],
    ),
    # Google (no detect-secrets plugin): API keys, OAuth client secrets, access and refresh tokens.
    # AWS access key ids and Twilio SIDs: detect-secrets' patterns. Azure: its AccountKey= pattern.
    _family(
        [
            AWSKeyDetector.denylist[0].pattern + f"(?![{_AN}])",
            rf"AIza[{_TOK}]{{35}}(?![{_TOK}])",
            AzureStorageKeyDetector.denylist[0].pattern,
            TwilioKeyDetector.denylist[0].pattern + f"(?![{_AN}])",
        ],
        [
            _Alt("AIza", "google", _not_run),
            _Alt("AccountKey=", "azure", keep_prefix=True, boundary=frozenset()),
            *(_Alt(p, "aws", boundary=_AN_SET) for p in ("AKIA", "ASIA", "ABIA", "ACCA", "A3T")),
            _Alt("AC", "twilio", boundary=_AN_SET),
        ],
    ),
    _family(
        [rf"GOCSPX-[{_TOK}]{{28}}(?![{_TOK}])", _GITLAB[1]],
        [_Alt("GOCSPX-", "google", _not_run), _Alt("GR1348941", "gitlab", _not_run)],
    ),
    _family([rf"ya29\.[{_TOK}]{{20,2048}}"], [_Alt("ya29.", "google", _not_run)]),
    _family([rf"1//0[{_TOK}]{{40,512}}"], [_Alt("1//0", "google", _not_run)]),
    _family(
        [SendGridDetector.denylist[0].pattern, TwilioKeyDetector.denylist[1].pattern + f"(?![{_AN}])"],
        [_Alt("SG.", "sendgrid"), _Alt("SK", "twilio", boundary=_AN_SET)],
    ),
    # The secret access key, quoted, near "aws…key" (detect-secrets' second AWS pattern, run only
    # on the 40-character quoted values themselves: on its own it is slow on text full of "aws") …
    _Rule(re.compile(r"[\"'][0-9a-zA-Z/+]{40}[\"']"), _aws_quoted, ("aws",)),
    # … and unquoted, in env files, ~/.aws/credentials, shell exports and CLI flags.
    _rule(
        "aws",
        r"(?i)aws[_-]?secret(?:[_-]?access)?[_-]?key\\?[\"']?(?:[ \t]*[:=]|[ \t])[ \t]*\\?[\"']?"
        r"(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        "v",
        triggers=("aws",),
    ),
    _rule("slack", SlackDetector.denylist[0], triggers=("xox",)),
    _family([r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+"], [_Alt("xapp-", "slack", boundary=_AN_SET)]),
    # Webhook URLs: the path is the secret; the host stays so the event still says what it was.
    # Hugging Face tokens share the first letter.
    _family(
        [r"hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+", rf"hf_[{_AN}]{{30,40}}(?![{_AN}])"],
        [
            _Alt("hooks.slack.com/services/", "slack", keep_prefix=True, boundary=frozenset()),
            _Alt("hf_", "huggingface", _random_body, _ALNUM_),
        ],
    ),
    _family(
        [r"/api/webhooks/\d{5,30}/[A-Za-z0-9_-]{40,100}"],
        [_Alt("/api/webhooks/", "discord", keep_prefix=True, boundary=frozenset())],
    ),
    # npm: detect-secrets' .npmrc pattern (//host/:_authToken=…) backtracks quadratically on long
    # lines; the token prefix here and the _authToken value (with the URL rule below) are enough.
    _family([rf"npm_[{_AN}]{{36}}(?![{_AN}])"], [_Alt("npm_", "npm", _not_run, _ALNUM_)]),
    _family(["|".join(p.pattern for p in PypiTokenDetector.denylist)], [_Alt("pypi-", "pypi")]),
    _rule("mailchimp", MailchimpDetector.denylist[0], triggers=("-us",)),
    # JWTs: detect-secrets' pattern ends in a lazy `*?` and so never takes the signature; this one
    # does, and detect-secrets' validator checks that header and payload decode to JSON. The
    # boundary sits in the regex: without it "eyJeyJeyJ…" would be rescanned from every eyJ.
    _rule(
        "jwt",
        rf"eyJ(?:(?<![{_TOK}]...)|(?<=\\[nrt]...))[{_TOK}]{{4,8192}}+=*+\.[{_TOK}]{{4,65536}}+=*+(?:\.[{_TOK}]{{0,8192}}+=*+)?",
        check=_jwt_ok,
    ),
    # user:password@ in any URL (postgres://, https://, redis://:pw@, git remotes), or a bare token
    # as the user (https://<token>@github.com); and .npmrc's //registry/:_authToken=….
    _Rule(
        re.compile(
            rf"://(?:{_USER}:(?P<pw>{_PASS})|(?P<tok>[{_TOK}]{{20,256}}))@"
            r"|:_authToken=[ \t]*(?P<npm>[^\s\"'$]{8,512})"
        ),
        _colon_classify,
    ),
    _rule(
        "password",
        r"(?i)[?&;](?:password|passwd|pwd|pass)=(?P<v>[^&;\s\"'<>\\]{1,512})",
        "v",
        lambda v: not _is_placeholder(v),
        triggers=("password=", "passwd=", "pwd=", "pass="),
    ),
    _rule(
        "token",
        r"(?i)[?&](?:sig|signature|x-amz-signature|x-goog-signature|x-amz-security-token)=(?P<v>[^&\s#\"'<>\\]{16,2048})",
        "v",
        looks_random,
        triggers=("sig=", "signature=", "x-amz-security-token="),
    ),
    # ADO.NET / ODBC connection strings: Password=…; is a credential whatever its entropy. The
    # pair starts the string or follows a ';' or a quote (`const password = '…';` is code).
    _rule(
        "password",
        r"(?i)(?<![^;\"'])(?:password|pwd)[ \t]*=[ \t]*"
        r"(?P<v>\{[^}\r\n]{1,256}+\}|'[^'\r\n]{1,256}+'|\"[^\"\r\n]{1,256}+\"|[^;\r\n\"'\\]{1,256}+);",
        "v",
        lambda v: not _is_placeholder(v.strip("{}'\" ")),
        triggers=("password", "pwd"),
    ),
    _rule(
        "password",
        re.compile(r"(?i);[ \t]*(?:password|pwd)[ \t]*=[ \t]*(?P<v>[^;\r\n\"'\\]{1,256}+)(?=[\"']|\\[nr\"']|$)", re.M),
        "v",
        lambda v: not _is_placeholder(v.strip()),
        triggers=("password", "pwd"),
    ),
    # ~/.netrc: machine host [login user] [account a] password secret
    _rule(
        "password",
        r"(?<![\w-])machine\s+\S{1,256}+(?:\s+(?:login|account|port)\s+\S{1,256}+){1,3}\s+password\s+(?P<v>\S{1,256})",
        "v",
        lambda v: not _is_placeholder(v),
        triggers=("machine",),
    ),
    # XML / HTML-ish config: <password>…</password>, <apiToken>…</apiToken> (Maven, NuGet, .NET).
    _Rule(re.compile(r"<(?P<tag>[A-Za-z][\w.:-]{0,63}+)>(?P<v>[^<>\r\n]{1,512}+)</(?P=tag)>"), _xml_classify, ("</",)),
    # Password flags of common clients: mysql -pSECRET, redis-cli -a SECRET, sshpass -p SECRET,
    # docker login -p SECRET (the value alone; quotes stay). The tool's name comes first, for
    # the literal-prefix search; its left boundary is checked after it.
    *(
        _rule(
            "password",
            rf"{tool}(?<![\w-]{tool}){rest}[ \t]+(?:[^\r\n|;&]{{0,128}}?[ \t])??{flag}[\"']?(?P<v>[^\s\"']{{1,256}})",
            "v",
            lambda v: not _is_placeholder(v),
            triggers=(tool,),
        )
        for tool, rest, flag in (
            ("mysql", "(?:dump|admin|import|sh)?", "-p"),
            ("redis-cli", "", r"-a[ \t]+"),
            ("sshpass", "", r"-p[ \t]*"),
            ("docker", r"[ \t]+login", r"-p[ \t]+"),
        )
    ),
    # curl -u user:password
    _rule(
        "password",
        r"(?<![\w-])(?:-u|--user)[ \t]+[\"']?[^\s:\"'$]{1,128}+:(?P<v>[^\s\"'@]{1,256})",
        "v",
        lambda v: not _is_placeholder(v) and not v.isdigit(),
        triggers=("curl",),
    ),
    # Authorization / Proxy-Authorization headers: the scheme stays, the credential goes. The
    # scheme is atomic so that "Bearer [REDACTED:jwt]" is not retried as a credential "Bearer".
    _Rule(
        re.compile(
            r"(?i)(?<![A-Za-z0-9_-])(?:proxy-)?authorization(?P<kq>\\?[\"'])?[ \t]*[:=][ \t]*(?P<vq>\\?[\"'])?[ \t]*"
            r"(?>(?P<scheme>(?:bearer|basic|token|bot|digest|negotiate|ntlm|apikey|api-key|key|sso-key|otp|jwt|hmac)[ \t]+)?)"
            r"(?P<v>[^\s\"'`\\,;<>{}()\[\]$]{1,8192})"
        ),
        _authorization_classify,
        ("authorization",),
    ),
    # Basic credentials outside a header line: base64 of user:password.
    _rule(
        "authorization",
        r"(?<![A-Za-z0-9_-])(?:[Bb]asic|BASIC)[ \t]+(?P<v>[A-Za-z0-9+/]{8,4096}={0,2})(?![A-Za-z0-9+/=])",
        "v",
        lambda v: _basic_credentials(v) and not _basic_placeholder(v),
        triggers=("basic",),
    ),
    # A bearer token outside a header line (AUTH_HEADER="Bearer …", logs).
    _rule(
        "authorization",
        r"(?<![A-Za-z0-9_-])(?:[Bb]earer|BEARER)[ \t]+(?P<v>[A-Za-z0-9._~+/-]{16,8192}=*)",
        "v",
        looks_random,
        triggers=("bearer",),
    ),
)


# ---------------------------------------------------------------------------------------------
# private key blocks

_PEM_KIND = r"(?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?"
_PEM_HEADER = r"(?:Proc-Type|DEK-Info|Comment|Version|Hash|Charset)[ \t]*:[^\r\n\\]{0,512}"
_NL = r"(?:\r?\n|\\+(?:r\\+)?n)"  # a newline, or one escaped (once or more) in JSON / repr text
_PEM = re.compile(
    rf"(?:-----BEGIN {_PEM_KIND}-----|---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----)"
    rf"(?P<body>(?:{_PEM_HEADER}|[A-Za-z0-9+/=\s]|\\+[nrt])*+)"
    rf"(?P<end>-----END {_PEM_KIND}-----|---- END SSH2 ENCRYPTED PRIVATE KEY ----)?"
)
# Without an END line (truncated output) only whole lines of key material go, and a last line
# cut short.
_PEM_LINES = re.compile(
    rf"(?:(?:[ \t]*{_NL})++[ \t]*(?:{_PEM_HEADER}|[A-Za-z0-9+/=]{{1,128}}(?![^\r\n\\\"'`]))|[ \t]*{_NL}[A-Za-z0-9+/=]{{16,128}})*+"
)
_PUTTY = re.compile(
    rf"Private-Lines:[ \t]*\d{{1,4}}(?:{_NL}[A-Za-z0-9+/=]{{1,128}})*+(?:{_NL}Private-MAC:[ \t]*[0-9a-fA-F]+)?"
)
_B64_RUN = re.compile(r"[A-Za-z0-9+/]{16}")


def _redact_private_keys(text: str, counts: Counter[str]) -> str:
    if "PRIVATE KEY" not in text and "Private-Lines:" not in text:
        return text
    mark = _mark("private_key")

    def pem(m: re.Match[str]) -> str:
        if m.group("end") is not None:
            if not _B64_RUN.search(m.group("body")):
                return m.group(0)  # "-----BEGIN … -----\n...\n-----END … -----": an elided example
            counts["private_key"] += 1
            return mark
        # The body regex takes every character the line regex can, so `lines` ends inside m.
        lines = _PEM_LINES.match(text, m.start("body"))
        if lines is None or not _B64_RUN.search(lines.group(0)):
            return m.group(0)  # a header mentioned in code or prose, no key material
        counts["private_key"] += 1
        return mark + text[lines.end() : m.end()]

    def putty(m: re.Match[str]) -> str:
        counts["private_key"] += 1
        return mark

    if "PRIVATE KEY" in text:
        text = _PEM.sub(pem, text)
    if "Private-Lines:" in text:
        text = _PUTTY.sub(putty, text)
    return text


# ---------------------------------------------------------------------------------------------
# <private> spans

_PRIVATE_TAG = re.compile(r"<(/?)private(?:\s[^<>]{0,256}+)?>", re.IGNORECASE)


def _strip_private(text: str) -> tuple[str, int]:
    if _PRIVATE_TAG.search(text) is None:
        return text, 0
    out: list[str] = []
    depth = spans = last = 0
    for m in _PRIVATE_TAG.finditer(text):
        if m.group(1):  # </private>
            if depth:
                depth -= 1
                if not depth:
                    last = m.end()
            else:  # a stray closing tag: drop the tag itself
                out.append(text[last : m.start()])
                last = m.end()
        else:
            if not depth:
                out.append(text[last : m.start()])
                spans += 1
            depth += 1
    out.append("" if depth else text[last:])  # unclosed: drop to the end
    return "".join(out), spans


def strip_private(text: str) -> str:
    """Drop ``<private>…</private>`` spans (any case, across lines; unclosed: to the end)."""
    return _strip_private(text)[0]


# ---------------------------------------------------------------------------------------------
# secrets assigned to secret-sounding names

# detect-secrets' keyword list (api_?key, secret, password, db_?pass, …) plus what it leaves out.
_NAME_DENYLIST = re.compile("|".join(KEYWORD_DENYLIST))
_SEGMENT = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# A name ending in one of these says what the value is about, not that it is the secret:
# TOKEN_URL, password_file, auth_type, secret_name, ACCESS_KEY_ID, password_encryption.
_NOT_SECRET_LAST = frozenset(
    """url uri urls endpoint host hostname port file files path paths dir directory type types method mode
    name names count length len size limit ttl timeout expiry expires expiration prefix suffix field fields
    header headers format version kind scope scopes label id ids enabled required policy usage index class
    cls provider backend strategy scheme regex pattern error errors message msg help hint prompt title text
    description desc placeholder example cache store storage handler manager factory plugin module config
    settings options counter budget rate ratio encryption algorithm algo cipher input validator validation
    reset""".split()
)
# Anywhere in a name: max_tokens, num_tokens, PUBLIC_KEY, publishable_key.
_NOT_SECRET_ANY = frozenset("max min num public publishable".split())
_ASSIGN_HEAD = re.compile(
    r"(?i)(?P<kw>secret|token|pass|pwd|key|cred|auth)(?P<tail>[A-Za-z0-9_.-]{0,64}+)"
    r"(?:\\?[\"'])?\]?"
    # =, :=, =>, YAML/JSON/header ':', a Python annotation (': str ='), or a CLI flag's space
    r"(?:[ \t]*(?P<op>=>|:=|=(?!=)|:(?![:/\\])(?:[ \t]*[A-Za-z_][A-Za-z0-9_.\[\], |]{0,40}?[ \t]+=(?!=))?)[ \t]*|[ \t]+)"
)
_VALUE = re.compile(
    r"(?P<q>\\?[\"'`])(?P<qv>[^\"'`\\\r\n]{1,4096}+)(?P=q)|(?P<uv>[^\s\x00-\x1f\"'`,;(){}\[\]<>\\]{1,4096}+)"
)
_NAME_RUN = re.compile(r"[A-Za-z0-9_.-]*")
_EXPRESSION = re.compile(r"[A-Za-z0-9_.]*")  # what an unquoted value in code can look like
_AFTER_NAME = frozenset("\"'\\] \t=:")  # what may follow a name in an assignment (not "")
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


@functools.lru_cache(maxsize=4096)
@lru_cache(maxsize=4_096)
def name_kind(name: str) -> str | None:
    """The kind of secret a variable / key / flag name announces, or None."""
    parts = [p.lower() for p in _SEGMENT.findall(name)]
    if not parts or parts[-1] in _NOT_SECRET_LAST or any(p in _NOT_SECRET_ANY for p in parts):
        return None
    joined = "_".join(parts)
    # "pass" only ends a name (DB_PASS, --smtp-pass); alone it is test output ("PASS: x.py"),
    # elsewhere a word (PassThrough, pass_rate).
    if (
        any("passw" in p or p in ("pwd", "passphrase", "passcode") for p in parts)
        or (parts[-1] == "pass" and len(parts) > 1)
        or re.search(r"db_?pass|key_?pass|contrase", joined)
    ):
        return "password"
    if any(("token" in p and not p.startswith("tokeniz")) or p in ("auth", "oauth") for p in parts):
        return "token"
    if re.search(r"api_?key", joined):
        return "api_key"
    if any("secret" in p or "credential" in p or p in ("creds", "cred") for p in parts):
        return "secret"
    if re.search(r"(?:private|priv|access|secret|signing|encryption|master)_?key", joined) or _NAME_DENYLIST.search(
        joined
    ):
        return "secret"
    return None


# CamelCase / camelCase names, acronyms included. Possessive, and at each capital the next
# character decides between acronym and word, so it cannot backtrack. (Loose: random letters
# match it often, so it only excuses unquoted values in code.)
_CAMEL = re.compile(r"[a-z]*+(?:(?:[A-Z](?![a-z]))++|[A-Z][a-z]{2,}+)++\d*")


_SNAKE = re.compile(r"_*[a-z][a-z0-9]*(?:_+[a-z0-9]+)+_*")  # per_token_cast, api_key_value


def _is_reference(v: str) -> bool:
    """self.api_key, os.environ, settings.SECRET_KEY, rsa.RSAPrivateKey, token_value: code."""
    if _SNAKE.fullmatch(v):
        return True
    return _DOTTED.fullmatch(v) is not None and not any(looks_random(p) for p in v.split("."))


# Objects whose attributes are read in code, even where a literal is expected: password=args.password
_RECEIVERS = tuple(
    f"{r}." for r in "self this cls args opts options config cfg conf settings os env request req ctx params".split()
)


def _assigned_ok(kind: str, value: str, *, quoted: bool, literal: bool, code: bool = False) -> bool:
    """Whether `value`, assigned to a name announcing `kind`, is a secret. `literal`: the context
    holds literal values (quotes, env files, YAML, flags); `code`: an unquoted value there may
    still be an expression (`x = y`, or `"key": y` in a dict)."""
    value = value.strip()
    if not value or _MARK in value or _is_placeholder(value) or (_is_path(value) and not looks_random(value)):
        return False
    if not quoted and (code or value.startswith(_RECEIVERS)) and (_is_reference(value) or _CAMEL.fullmatch(value)):
        return False  # self.api_key, os.environ; `credentials: UsernamePasswordCredentials`
    if "://" in value or _basic_placeholder(value):
        return False  # URLs: their user:password@ is handled by the URL rule
    if kind == "password" and literal:
        return _password_ok(value)
    return looks_random(value)


_LINE_REST = re.compile(r"[ \t]*+(?:#[^\r\n]*+)?(?:\r?\n|\\[rn]|$)")  # nothing but a comment left


def _line_start(text: str, i: int) -> bool:
    """Whether only `export `, `- ` or indentation separates position i from its line's start."""
    j = i
    while j > 0 and text[j - 1] in " \t":
        j -= 1
    if text[max(0, j - 1) : j] in ("-", ">", "<"):  # a YAML list item, curl -v's "> Header: value"
        j -= 1
        while j > 0 and text[j - 1] in " \t":
            j -= 1
    if text[max(0, j - 6) : j] == "export" and text[j : j + 1] in (" ", "\t"):
        j -= 6
        while j > 0 and text[j - 1] in " \t":
            j -= 1
    return j == 0 or text[j - 1] in "\r\n" or (j > 1 and text[j - 2] == "\\" and text[j - 1] in "nr")


_KEYWORDS = ("secret", "token", "pass", "pwd", "key", "cred", "auth")


def _redact_assignments(text: str, low: str, counts: Counter[str]) -> str:
    """`low` is `text` lowercased, same length: str.find over it is far faster than an
    IGNORECASE search, so candidates come from there and the regex only confirms them."""
    starts: list[int] = []
    for k in _KEYWORDS:
        i = low.find(k)
        while i >= 0:
            starts.append(i)
            i = low.find(k, i + len(k))
    if not starts:
        return text
    starts.sort()
    out: list[str] = []
    pos = last = 0
    for s in starts:
        if s < pos:
            continue
        # One look per name: the other keywords in it see the same name and what follows.
        end = _NAME_RUN.match(text, s).end()
        pos = end if end - s <= 64 else end - 64
        if end - s > 64 or text[end : end + 1] not in _AFTER_NAME:
            continue
        start, lo = s, max(0, s - 64)
        while start > lo and text[start - 1] in _NAME_CHARS:
            start -= 1
        if start > 0 and text[start - 1] == "\\" and text[start] in "nrt":
            start += 1  # the n of an escaped newline in raw JSON is not part of the name
        if start >= len(_MARK) and text.startswith(_MARK, start - len(_MARK)):
            continue  # the kind in [REDACTED:password]
        name = text[start:end]
        kind = name_kind(name)
        if kind is None or not (m := _ASSIGN_HEAD.match(text, s)):
            continue
        op = m.group("op")
        if op is None and not name.startswith("-"):
            continue
        v = _VALUE.match(text, m.end())
        pos = m.end() if v is None else v.end()
        if v is None:
            continue
        quoted = v.group("qv") is not None
        group = "qv" if quoted else "uv"
        if not quoted and text[v.end() : v.end() + 1] in ("(", "["):
            continue  # a call or a subscript: code
        if op is None and v.group(0).startswith("-") and not looks_random(v.group(group)):
            continue  # `--token --verbose`: the next flag, not a value
        bare = name.strip("-.")
        # Quoted values, YAML/JSON/header values, CLI flags, ALL_CAPS (env) names and `name=value`
        # at the start of a line (.env, ini) hold literals; an unquoted value after `name = ` or
        # `f(name=` in code is an expression unless it looks random.
        tight = op == "=" and m.end() - m.end("tail") == 1  # name=value, no spaces
        ends_line = _LINE_REST.match(text, v.end()) is not None  # nothing but a comment after it
        # `NAME=value` alone on its line (.env, ini, properties) or in `--x=password=…`; a Python
        # keyword argument on a line of its own ends in "," or ")".
        dotenv = tight and ((_line_start(text, start) and ends_line) or text[start - 1 : start] == "=")
        yaml = op == ":" and _line_start(text, start) and ends_line  # `  password: value`
        subscript = start > 0 and text[start - 1] in "'\""  # env['PWD'] = …
        env_name = bare.upper() == bare and any(c.isalpha() for c in bare) and not subscript
        literal = (
            quoted
            or op is None
            or name.startswith("-")
            or (op.startswith(":") and "=" not in op)
            or env_name
            or dotenv
            or not _EXPRESSION.fullmatch(v.group(group))  # `password = S3cr3t!`: no code looks like that
        )
        # Otherwise an unquoted value may be code: `password=args.password`, `f(token=token_value)`,
        # `{password: this.password}`, `env['PWD'] = self.cwd`.
        code = not (op is None or name.startswith("-") or env_name or yaml or dotenv)
        if _assigned_ok(kind, v.group(group), quoted=quoted, literal=literal, code=code):
            out.append(text[last : v.start(group)])
            out.append(_mark(kind))
            last = v.end(group)
            counts[kind] += 1
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# public API


def _lower(text: str) -> str:
    """Lowercase with positions kept: str.lower() can change the length ("İ" -> "i̇")."""
    return text.lower() if text.isascii() else text.encode("ascii", "replace").decode("ascii").lower()


def _redact(text: str, counts: Counter[str]) -> str:
    text, spans = _strip_private(text)
    if spans:
        counts["private"] += spans
    if not text:
        return text
    text = _redact_private_keys(text, counts)
    before = text
    low = _lower(text)
    seen: dict[str, bool] = {}  # trigger -> whether it occurs; several rules share triggers
    for rule in _RULES:
        if rule.triggers:
            for t in rule.triggers:
                found = seen.get(t)
                if found is None:
                    found = seen[t] = t in low
                if found:
                    break
            else:
                continue
        text = rule.apply(text, counts)
    return _redact_assignments(text, low if text is before else _lower(text), counts)


def redact_text(text: str) -> Redaction:
    """Replace every credential found in `text` by ``[REDACTED:<kind>]``; private spans go first."""
    if not isinstance(text, str):
        return redact_value(text)
    counts: Counter[str] = Counter()
    return Redaction(_redact(text, counts), counts)


def _redact_named(key: str, value: str, counts: Counter[str]) -> str:
    """A string stored under a secret-sounding JSON key is a literal assigned to that name."""
    if _MARK in value:
        return value
    if key.lower().strip() in ("authorization", "proxy-authorization"):
        scheme, _, cred = value.strip().partition(" ")
        if cred and scheme.lower() in _AUTH_SCHEMES and _cred_ok(cred.strip()):
            counts["authorization"] += 1
            return f"{scheme} {_mark('authorization')}"
        if not cred and _cred_ok(value.strip()):
            counts["authorization"] += 1
            return _mark("authorization")
        return value
    kind = name_kind(key)
    if kind is not None and _assigned_ok(kind, value, quoted=True, literal=True):
        counts[kind] += 1
        return _mark(kind)
    return value


# Payload keys and short values repeat from event to event ("role", "model", a tool's name, a
# path): their result is remembered (the rules are a pure function of the text).
_MEMO_CHARS = 256


@lru_cache(maxsize=16_384)
def _redact_short(text: str) -> tuple[str, tuple[tuple[str, int], ...]]:
    counts: Counter[str] = Counter()
    return _redact(text, counts), tuple(counts.items())


def _redact_memo(text: str, counts: Counter[str]) -> str:
    if len(text) > _MEMO_CHARS:
        return _redact(text, counts)
    out, found = _redact_short(text)
    for kind, n in found:
        counts[kind] += n
    return out


def _walk(value: Any, counts: Counter[str], key: str | None = None) -> Any:
    if isinstance(value, str):
        text = _redact_memo(value, counts)
        return _redact_named(key, text, counts) if key else text
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            nk = _redact_memo(k, counts) if isinstance(k, str) else k
            if nk in out:  # two keys redacted to the same text: keep both entries
                nk = f"{nk} #{len(out)}"
            # Only a name-sized key names its value (a key may be a whole document).
            out[nk] = _walk(v, counts, k if isinstance(k, str) and len(k) <= 128 else None)
        return out
    if isinstance(value, (list, tuple)):
        items = [_walk(v, counts, key) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def redact_value(value: Any) -> Redaction:
    """Redact a JSON value: strings anywhere (dict keys too), recursively; other scalars unchanged.

    A string under a secret-sounding key (``{"DB_PASSWORD": "…"}``) is judged as an assignment
    to that name, so it is caught without the name being in the string itself.
    """
    counts: Counter[str] = Counter()
    return Redaction(_walk(value, counts), counts)
