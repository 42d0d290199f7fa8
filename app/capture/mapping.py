"""What both transcript readers share: turning shell commands, their output, edits and paths into
the pieces of a ctxsearch event.

Everything here is a pure function of its arguments (stdlib only), so each rule can be tested on
its own. The rules are heuristics and say so: they aim at what a developer later searches for
(the test that failed, the exception, the file that was edited, the commit) and stay quiet when
unsure.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import ntpath
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime

DEFAULT_MAX_CONTENT_CHARS = 100_000
MAX_FILES = 200
MAX_PATH_CHARS = 1024
MAX_ID_CHARS = 256
MAX_TOOL_CHARS = 200
PAYLOAD_BUDGET_BYTES = 16_000

# ---------------------------------------------------------------------------------------------
# text hygiene

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SYSTEM_REMINDER = re.compile(r"\s*<system-reminder>.*?</system-reminder>\s*", re.DOTALL)


def clean_text(text: str) -> str:
    """Text the service accepts: no NUL, no lone surrogates (they cannot be encoded as UTF-8)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def clean_id(value: str, limit: int = MAX_ID_CHARS) -> str:
    """An id, project or session id or tool name: no control characters, at most `limit` chars."""
    value = clean_text(_CONTROL.sub("", value)).strip()
    return value[:limit]


def strip_system_reminders(text: str) -> str:
    """Claude Code appends <system-reminder> blocks to tool results and prompts; they are noise."""
    if "<system-reminder>" not in text:
        return text
    return _SYSTEM_REMINDER.sub("\n", text).strip("\n")


def cut_middle(text: str, limit: int = DEFAULT_MAX_CONTENT_CHARS) -> str:
    """Keep the head and the tail of a long text, with a marker saying how much was cut.

    Test runners, compilers and tracebacks put what matters at the end, commands and headers at
    the start, so both ends are kept (60 % head, 40 % tail). The result is never longer than
    `limit`.
    """
    if len(text) <= limit:
        return text
    # The marker's own length depends on the count; reserve room for the widest one.
    reserve = len(f"\n[… {len(text):,} characters cut …]\n")
    if limit <= reserve + 2:
        return text[:limit]
    keep = limit - reserve
    head = keep * 3 // 5
    tail = keep - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[… {cut:,} characters cut …]\n{text[len(text) - tail :]}"


# ---------------------------------------------------------------------------------------------
# identity

_PROJECT_BAD = re.compile(r"[^a-z0-9._-]")


def normalize_project_id(name: str) -> str:
    """Lower-case; every character outside [a-z0-9._-] becomes '-'. Empty -> 'unknown'."""
    out = _PROJECT_BAD.sub("-", (name or "").strip().lower())[:MAX_ID_CHARS]
    return out or "unknown"


def _is_windows_path(path: str) -> bool:
    return bool(re.match(r"^[A-Za-z]:[\\/]", path)) or path.startswith("\\\\")


def path_basename(path: str) -> str:
    path = path.rstrip("/\\")
    if _is_windows_path(path) or "\\" in path:
        return ntpath.basename(path)
    return posixpath.basename(path)


def project_id_from_cwd(cwd: str | None) -> str:
    return normalize_project_id(path_basename(cwd or ""))


def relativize(path: str, cwd: str | None) -> str:
    """A path as ctxsearch stores it: relative to the session's cwd when it is under it (POSIX
    separators), else as given. Windows paths compare without case."""
    path = path.strip()
    if not path:
        return path
    if _is_windows_path(path) or (cwd and _is_windows_path(cwd)):
        p = ntpath.normpath(path)
        if cwd and ntpath.isabs(p):
            base = ntpath.normpath(cwd)
            if p.lower() == base.lower():
                return "."
            prefix = base.rstrip("\\") + "\\"
            if p.lower().startswith(prefix.lower()):
                return p[len(prefix) :].replace("\\", "/")
        return p.replace("\\", "/") if not ntpath.isabs(p) else p
    if path.startswith("file://"):
        path = path[len("file://") :]
    if path.startswith("/"):
        p = posixpath.normpath(path)
        if cwd and cwd.startswith("/"):
            base = posixpath.normpath(cwd)
            if p == base:
                return "."
            if p.startswith(base.rstrip("/") + "/"):
                return p[len(base.rstrip("/")) + 1 :]
        return p
    p = posixpath.normpath(path)
    return p


def clean_files(paths, cwd: str | None, limit: int = MAX_FILES) -> list[str]:
    """Relativised, de-duplicated paths (order kept), each 1..1024 characters, at most `limit`."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in paths:
        if not isinstance(raw, str) or not raw.strip():
            continue
        p = clean_text(_CONTROL.sub("", relativize(raw, cwd)))
        if not p or p == "." or len(p) > MAX_PATH_CHARS or p in seen:
            continue
        seen.add(p)
        out.append(p)
        if len(out) >= limit:
            break
    return out


# ---------------------------------------------------------------------------------------------
# timestamps

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")


def normalize_timestamp(value) -> str | None:
    """RFC 3339 text with an offset, or None. Accepts epoch seconds/milliseconds and naive ISO
    text (read as UTC)."""
    if isinstance(value, str):
        v = value.strip()
        if _RFC3339.match(v):
            return v
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")
        except (OverflowError, OSError, ValueError):
            return None
    return None


# ---------------------------------------------------------------------------------------------
# shell commands

_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][\w-]*)\1")
_ENV_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_WRAPPERS = {
    "sudo",
    "time",
    "nice",
    "nohup",
    "env",
    "command",
    "exec",
    "stdbuf",
    "xvfb-run",
    "caffeinate",
    "unbuffer",
    "ionice",
    "chronic",
}
_RUNNERS = {  # "<tool> run ..." style wrappers
    "uv": {"run"},
    "poetry": {"run"},
    "pipenv": {"run"},
    "pdm": {"run"},
    "hatch": {"run"},
    "rye": {"run"},
    "conda": {"run"},
    "mamba": {"run"},
    "micromamba": {"run"},
    "bundle": {"exec"},
    "pixi": {"run"},
}
_OPERATORS = {"&&", "||", ";", "|", "&", "|&", ";;", "(", ")", "{", "}", "!"}
_REDIRECT = re.compile(r"^(?:\d*>>?|\d*>\||&>>?)$")
_READERS = {
    "cat",
    "head",
    "tail",
    "less",
    "more",
    "nl",
    "grep",
    "egrep",
    "fgrep",
    "rg",
    "ag",
    "ack",
    "find",
    "ls",
    "tree",
    "wc",
    "diff",
    "file",
    "stat",
    "jq",
    "bat",
    "view",
    "awk",
    "sed",
    "cut",
    "sort",
    "uniq",
    "echo",
    "printf",
    "pwd",
    "which",
    "type",
    "du",
    "df",
    "od",
    "xxd",
    "hexdump",
    "strings",
    "readlink",
    "realpath",
    "basename",
    "dirname",
    "fd",
    "locate",
    "whereis",
    "column",
    "tr",
    "git",
}
_GIT_READ = {
    "show",
    "diff",
    "log",
    "status",
    "blame",
    "grep",
    "ls-files",
    "branch",
    "rev-parse",
    "remote",
    "describe",
    "shortlog",
    "reflog",
    "config",
    "fetch",
    "tag",
}
_TEST_TOOLS = {
    "pytest",
    "py.test",
    "tox",
    "nox",
    "jest",
    "vitest",
    "mocha",
    "ava",
    "karma",
    "rspec",
    "phpunit",
    "pest",
    "ctest",
    "nosetests",
    "nose2",
    "trial",
    "behave",
    "cucumber",
    "playwright",
    "cypress",
    "testem",
    "tap",
    "busted",
    "prove",
    "runtests.py",
    "runtests",
    "green",
    "ward",
}
_JS_PMS = {"npm", "yarn", "pnpm", "bun"}
_PATH_TOKEN = re.compile(r"^(?:[\w.~@+-]*/)*[\w.@+-]*\.[A-Za-z0-9]{1,10}$|^(?:[\w.~@+-]+/)+[\w.@+-]*/?$")
_FILE_EXT = re.compile(r"\.[A-Za-z0-9]{1,10}$")


def strip_heredocs(command: str) -> str:
    """The command without here-document bodies (their text is data, not commands)."""
    if "<<" not in command:
        return command
    out: list[str] = []
    lines = command.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        delims = [(m.group(2), m.group(0).startswith("<<-")) for m in _HEREDOC.finditer(line)]
        i += 1
        for delim, dash in delims:
            while i < len(lines):
                body = lines[i].strip() if dash else lines[i]
                i += 1
                if body.strip() == delim:
                    break
    return "\n".join(out)


_TOKEN = re.compile(
    r"""\s*(?:
    (?P<op>&&|\|\||;;|\|&|&>>|&>|\d*>>|\d*>\||\d*>&|\d*>|<<<|<<-?|<&|<|[;&|()!{}])
  | (?P<word>(?:[^\s'"\\;&|()<>]+|'[^']*'|"(?:[^"\\]|\\.)*"|\\.?)+)
  | (?P<bad>\S)
)""",
    re.X | re.S,
)
_UNQUOTE = re.compile(r"""'([^']*)'|"((?:[^"\\]|\\.)*)"|\\(.?)""", re.S)
_DQ_ESCAPE = re.compile(r"""\\([\\"$`])""")


def _unquote(match: re.Match) -> str:
    if match.group(1) is not None:
        return match.group(1)
    if match.group(2) is not None:
        return _DQ_ESCAPE.sub(r"\1", match.group(2))
    return match.group(3)


def _tokens(line: str) -> list[str]:
    """Shell-ish tokens: words (quotes removed) and operators (&& || ; | & > >> 2> < ( ) ...).
    A regex, not shlex: shlex is far slower and gives up on unbalanced quotes."""
    out: list[str] = []
    for m in _TOKEN.finditer(line):
        word = m.group("word")
        if word is not None:
            out.append(_UNQUOTE.sub(_unquote, word) if ("'" in word or '"' in word or "\\" in word) else word)
        elif m.group("op") is not None:
            out.append(m.group("op"))
        elif m.group("bad") is not None:
            out.append(m.group("bad"))
    return out


def split_segments(command: str) -> list[list[str]]:
    """Simple commands of a shell line: token lists split at && || ; | & and newlines."""
    text = strip_heredocs(command)[:8000]
    text = text.replace("\\\n", " ")
    segments: list[list[str]] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        cur: list[str] = []
        for tok in _tokens(line):
            if tok in _OPERATORS:
                if cur:
                    segments.append(cur)
                cur = []
            else:
                cur.append(tok)
        if cur:
            segments.append(cur)
    return segments


def _strip_wrappers(seg: list[str]) -> list[str]:
    i = 0
    n = len(seg)
    while i < n:
        tok = seg[i]
        base = posixpath.basename(tok)
        if _ENV_ASSIGN.match(tok):
            i += 1
        elif base in _WRAPPERS:
            i += 1
            while i < n and seg[i].startswith("-"):
                i += 1
        elif base in ("timeout", "gtimeout"):
            i += 1
            while i < n and seg[i].startswith("-"):
                i += 2 if seg[i] in ("-s", "-k", "--signal", "--kill-after") else 1
            if i < n and re.match(r"^\d+(\.\d+)?[smhd]?$", seg[i]):
                i += 1
        elif base in _RUNNERS and i + 1 < n and seg[i + 1] in _RUNNERS[base]:
            i += 2
            while i < n and seg[i].startswith("-"):
                i += 2 if seg[i] in ("-n", "--name", "-p", "--prefix", "--with", "--python") else 1
        elif base in ("npx", "pnpx", "bunx"):
            i += 1
            while i < n and seg[i].startswith("-"):
                i += 1
        elif base in ("yarn", "pnpm") and i + 1 < n and seg[i + 1] in ("exec", "dlx"):
            i += 2
            while i < n and seg[i].startswith("-"):
                i += 1
        elif base == "coverage" and i + 1 < n and seg[i + 1] == "run":
            i += 2
            while i < n and seg[i].startswith("-") and seg[i] != "-m":
                i += 1
            if i < n and seg[i] == "-m":
                return ["python", *seg[i:]]
        else:
            break
    return seg[i:]


def _is_python(word: str) -> bool:
    return bool(re.match(r"^(?:python|pypy)(?:\d+(?:\.\d+)*)?$", word))


def _test_runner(seg: list[str]) -> str | None:
    """The test runner a simple command starts, or None."""
    if not seg:
        return None
    word = posixpath.basename(seg[0])
    args = seg[1:]
    if word in _TEST_TOOLS:
        return word
    if _is_python(word):
        if len(args) >= 2 and args[0] == "-m":
            mod = args[1]
            if mod in ("pytest", "unittest", "nose", "nose2", "tox", "nox", "green", "trial", "xmlrunner"):
                return f"python -m {mod}"
            if mod == "django" and "test" in args[2:3]:
                return "django test"
        rest = [a for a in args if not a.startswith("-")]
        if rest:
            script = posixpath.basename(rest[0])
            if script in ("runtests.py", "run_tests.py", "runtest.py"):
                return script
            if script == "manage.py" and len(rest) > 1 and rest[1] == "test":
                return "manage.py test"
            if script == "setup.py" and len(rest) > 1 and rest[1] == "test":
                return "setup.py test"
        return None
    if word in _JS_PMS and args:
        sub = args[0]
        if sub in ("test", "t", "tst") or sub.startswith("test:"):
            return f"{word} test"
        if (
            sub == "run"
            and len(args) > 1
            and (args[1] == "test" or args[1].startswith("test:") or args[1] in ("unit", "e2e", "spec"))
        ):
            return f"{word} run {args[1]}"
        if word in ("yarn", "pnpm", "bun") and sub in ("jest", "vitest", "mocha"):
            return sub
        return None
    if word == "go" and args[:1] == ["test"]:
        return "go test"
    if word == "cargo" and args and args[0] in ("test", "nextest", "t"):
        return f"cargo {args[0]}"
    if word in ("mvn", "mvnw", "./mvnw") and any(
        a in ("test", "verify", "integration-test") or a.startswith("surefire:") for a in args
    ):
        return "mvn test"
    if word in ("gradle", "gradlew") and any(a == "test" or a.endswith(":test") or a == "check" for a in args):
        return "gradle test"
    if word == "dotnet" and args[:1] == ["test"]:
        return "dotnet test"
    if word in ("make", "gmake") and any(
        a in ("test", "tests", "check", "test-all") or a.startswith("test-") or a.startswith("test_") for a in args
    ):
        return "make test"
    if word in (
        "deno",
        "swift",
        "mix",
        "zig",
        "dart",
        "flutter",
        "bazel",
        "bazelisk",
        "buck",
        "lein",
        "sbt",
        "stack",
        "cabal",
        "julia",
    ) and args[:1] == ["test"]:
        return f"{word} test"
    if word in ("rails", "rake") and args[:1] and args[0] in ("test", "spec"):
        return f"{word} {args[0]}"
    if word == "bin/rails" and args[:1] == ["test"]:
        return "rails test"
    return None


def _git_subcommand(seg: list[str]) -> str | None:
    if not seg or posixpath.basename(seg[0]) != "git":
        return None
    i = 1
    while i < len(seg):
        tok = seg[i]
        if tok in ("-C", "-c", "--git-dir", "--work-tree", "--namespace"):
            i += 2
        elif tok.startswith("-"):
            i += 1
        else:
            return tok
    return None


def _looks_like_path(tok: str) -> bool:
    if not tok or len(tok) > 400 or tok.startswith("-") or "://" in tok or tok.startswith("$"):
        return False
    if any(c in tok for c in " \t\n'\"`=*?[]{}()<>|;&,") or tok in (".", "..", "/", "~"):
        return False
    if tok.startswith("/dev/") or tok == "/dev/null" or re.match(r"^[\d.:/+-]+$", tok):
        return False
    return bool(_PATH_TOKEN.match(tok))


def _path_args(seg: list[str]) -> list[str]:
    """Path-like arguments of a simple command (the pattern/script argument of grep/sed/awk and
    inline code of python -c / node -e are not paths)."""
    if not seg:
        return []
    word = posixpath.basename(seg[0])
    args = seg[1:]
    out: list[str] = []
    skip_next = False
    pattern_pending = word in ("grep", "egrep", "fgrep", "rg", "ag", "ack", "sed", "awk", "perl")
    code_flags = word in ("python", "python3", "node", "perl", "ruby", "bash", "sh", "zsh") or _is_python(word)
    for tok in args:
        if skip_next:
            skip_next = False
            continue
        if code_flags and tok in ("-c", "-e", "--eval", "-E", "-p"):
            skip_next = True
            continue
        if word in ("sed", "grep", "egrep", "rg") and tok in ("-e", "-f", "--regexp", "--file"):
            skip_next = True
            pattern_pending = False
            continue
        if _REDIRECT.match(tok) or tok in ("<", "<<", "<<<", "<<-") or tok.endswith(">&"):
            skip_next = tok.endswith(">&") or tok in ("<<", "<<-")
            continue
        if tok.startswith("-"):
            continue
        if pattern_pending:
            pattern_pending = False
            continue
        if "::" in tok:  # pytest node id: tests/test_x.py::test_y
            tok = tok.split("::", 1)[0]
        if _looks_like_path(tok):
            out.append(tok)
    return out


def _redirect_targets(seg: list[str]) -> list[str]:
    out = []
    for i, tok in enumerate(seg[:-1]):
        if _REDIRECT.match(tok):
            target = seg[i + 1]
            if target.startswith("&") or target.startswith("/dev/") or target.isdigit():
                continue
            out.append(target)
    return out


@dataclass(frozen=True)
class CommandInfo:
    """What a shell command does, as far as the text tells."""

    kind: str  # "test_run" | "commit" | "file_edit" | "read" | "other"
    runner: str | None = None  # the test runner, for test_run
    files: tuple[str, ...] = ()  # paths the command names
    edited: tuple[str, ...] = ()  # paths it writes (sed -i, redirects, tee)


@functools.lru_cache(maxsize=8192)
def classify_command(command: str) -> CommandInfo:
    """Sort a shell command into test_run / commit / file_edit / read / other.

    Precedence: a `git commit` anywhere makes it a commit; else a test runner anywhere makes it a
    test_run; else a write to a file (sed -i, perl -i, `> file`, tee) makes it a file_edit; else
    a command made only of reading tools (cat, grep, sed -n, git diff, ...) is a read.
    """
    segments = split_segments(command or "")
    runner = None
    commit = False
    edited: list[str] = []
    files: list[str] = []
    all_read = bool(segments)
    for raw in segments:
        seg = _strip_wrappers(raw)
        if not seg:
            continue
        word = posixpath.basename(seg[0])
        sub = _git_subcommand(seg)
        if sub == "commit":
            commit = True
        r = _test_runner(seg)
        if r and not runner:
            runner = r
        targets = _redirect_targets(seg)
        if word in ("sed", "gsed") and any(
            a == "-i" or a.startswith("-i") and not a.startswith("-in") or a.startswith("--in-place") for a in seg[1:]
        ):
            targets += [p for p in _path_args(seg)]
        elif word == "perl" and any(re.match(r"^-\w*i", a) for a in seg[1:]):
            targets += [a for a in seg[1:] if not a.startswith("-") and _looks_like_path(a)]
        elif word == "tee":
            targets += [a for a in seg[1:] if not a.startswith("-")]
        edited += [t for t in targets if _looks_like_path(t)]
        files += _path_args(seg)
        if word not in _READERS or (word == "git" and sub not in _GIT_READ) or (word == "sed" and "-i" in seg):
            all_read = False
        if targets:
            all_read = False
    all_files = tuple(dict.fromkeys(edited + files))
    written = tuple(dict.fromkeys(edited))
    if commit:
        return CommandInfo("commit", None, all_files, written)
    if runner:
        return CommandInfo("test_run", runner, all_files, written)
    if edited:
        return CommandInfo("file_edit", None, all_files, written)
    if all_read:
        return CommandInfo("read", None, all_files, ())
    return CommandInfo("other", None, all_files, ())


def argv_to_command(argv) -> str:
    """Codex records argv lists (["bash", "-lc", "script"]); the script is what was typed."""
    if isinstance(argv, str):
        return argv
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return json.dumps(argv, ensure_ascii=False) if argv is not None else ""
    if (
        len(argv) >= 3
        and posixpath.basename(argv[0])
        in ("bash", "sh", "zsh", "dash", "fish", "pwsh", "powershell", "powershell.exe", "pwsh.exe", "cmd.exe")
        and argv[1] in ("-lc", "-c", "-l", "-Command", "/c", "-NoProfile")
    ):
        rest = argv[2:]
        if argv[1] == "-l" and rest[:1] == ["-c"]:
            rest = rest[1:]
        while rest and rest[0].startswith("-") and len(rest) > 1:
            rest = rest[1:]
        return " ".join(rest) if len(rest) > 1 else (rest[0] if rest else "")
    return shlex.join(argv)


# ---------------------------------------------------------------------------------------------
# exit codes

_EXIT_PREFIX = re.compile(r"^(?:Error: )?Exit code:? (-?\d+)\s*\n?")


def split_exit_prefix(text: str) -> tuple[int | None, str]:
    """Claude Code writes a failed Bash result as "Exit code N\\n<output>"; split that off."""
    m = _EXIT_PREFIX.match(text)
    if m:
        return int(m.group(1)), text[m.end() :]
    return None, text


# ---------------------------------------------------------------------------------------------
# test outcomes


@dataclass
class TestOutcome:
    status: str  # "passed" | "failed" | "error" | "unknown"
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    counted: bool = False  # whether counts were read from the output
    failing: list[str] = field(default_factory=list)

    def payload(self) -> dict:
        out: dict = {"status": self.status}
        if self.counted:
            out["counts"] = {
                "passed": self.passed,
                "failed": self.failed,
                "errors": self.errors,
                "skipped": self.skipped,
            }
            out["failed"] = self.failed + self.errors
        if self.failing:
            out["failing_tests"] = self.failing[:30]
        return out


_PYTEST_SUMMARY = re.compile(r"^=+ (.*?\d+ \w+.*?|no tests ran.*?) in [\d.]+s(?: \([^)]*\))? =+\s*$", re.M)
_PYTEST_SHORT = re.compile(
    r"^((?:\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?|"
    r"rerun)(?:, )?)+) in [\d.]+s",
    re.M,
)
_COUNT = re.compile(
    r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?|rerun|pending|"
    r"passing|failing|todo|total|ignored)"
)
_PYTEST_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+?)(?: - .*)?$", re.M)
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in [\d.]+s", re.M)
_UNITTEST_RESULT = re.compile(r"^(OK|FAILED)(?: \(([^)]*)\))?\s*$", re.M)
_UNITTEST_FAIL = re.compile(r"^(?:FAIL|ERROR): (\S+) \(([\w.]+)\)", re.M)
_JEST_TESTS = re.compile(r"^\s*Tests:?\s+((?:\d+ \w+\s*[,|]?\s*)+)(?:\(\d+\))?\s*$", re.M)
_JEST_FAIL = re.compile(r"^\s*(?:✕|×|✗)\s+(.+?)(?:\s+\(\d+\s*m?s\))?$", re.M)
_MOCHA = re.compile(r"^\s*(\d+) (passing|failing|pending)\b", re.M)
_GO_FAIL = re.compile(r"^\s*--- FAIL: (\S+)", re.M)
_GO_PASS = re.compile(r"^\s*--- PASS: ", re.M)
_GO_PKG = re.compile(r"^(ok|FAIL)\s+\S+", re.M)
_CARGO = re.compile(r"^test result: (ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored", re.M)
_CARGO_FAIL = re.compile(r"^test (\S+) \.\.\. FAILED\s*$", re.M)
_RSPEC = re.compile(r"^(\d+) examples?, (\d+) failures?(?:, (\d+) pending)?", re.M)
_PHPUNIT_OK = re.compile(r"^OK \((\d+) tests?, \d+ assertions?\)", re.M)
_PHPUNIT_BAD = re.compile(
    r"^Tests: (\d+), Assertions: \d+(?:, Errors: (\d+))?(?:, Failures: (\d+))?"
    r"(?:, \w+: \d+)*?(?:, Skipped: (\d+))?",
    re.M,
)
_MAVEN = re.compile(r"Tests run: (\d+), Failures: (\d+), Errors: (\d+), Skipped: (\d+)")
_GRADLE = re.compile(r"(\d+) tests? completed, (\d+) failed(?:, (\d+) skipped)?")
_DOTNET = re.compile(r"(?:Passed|Failed)!\s+-\s+Failed:\s+(\d+), Passed:\s+(\d+), Skipped:\s+(\d+)")


def parse_test_outcome(output: str, exit_code: int | None = None) -> TestOutcome:
    """Counts and failing tests from a test runner's output; the exit code decides when the output
    says nothing. Only the last 30,000 characters are read (summaries come last)."""
    text = output[-30_000:] if len(output) > 30_000 else output
    o = TestOutcome("unknown")
    failing: list[str] = []

    def add_counts(pairs):
        for n, word in pairs:
            n = int(n)
            if word in ("passed", "passing", "xpassed"):
                o.passed += n
            elif word in ("failed", "failing"):
                o.failed += n
            elif word.startswith("error"):
                o.errors += n
            elif word in ("skipped", "pending", "xfailed", "ignored", "todo", "deselected"):
                o.skipped += n
        o.counted = True

    found = list(_PYTEST_SUMMARY.finditer(text))
    m = found[-1] if found else None
    if m:
        if m.group(1).startswith("no tests ran"):
            o.counted = True
        add_counts(_COUNT.findall(m.group(1)))
    else:
        short = list(_PYTEST_SHORT.finditer(text))
        if short:
            add_counts(_COUNT.findall(short[-1].group(1)))
    if o.counted:
        failing += _PYTEST_FAILED.findall(text)
    if not o.counted:
        ran = _UNITTEST_RAN.search(text)
        res = list(_UNITTEST_RESULT.finditer(text))
        if ran and res:
            total = int(ran.group(1))
            detail = dict((k.strip(), int(v)) for k, v in re.findall(r"(\w+)=(\d+)", res[-1].group(2) or ""))
            o.failed = detail.get("failures", 0)
            o.errors = detail.get("errors", 0)
            o.skipped = detail.get("skipped", 0) + detail.get("expected failures", 0)
            o.passed = max(total - o.failed - o.errors - o.skipped, 0)
            o.counted = True
            failing += [f"{cls}.{name}" for name, cls in _UNITTEST_FAIL.findall(text)]
    if not o.counted:
        jest = list(_JEST_TESTS.finditer(text))
        if jest:
            add_counts(_COUNT.findall(jest[-1].group(1)))
            failing += [f.strip() for f in _JEST_FAIL.findall(text)]
    if not o.counted:
        mocha = _MOCHA.findall(text)
        if mocha:
            add_counts(mocha)
    if not o.counted:
        cargo = _CARGO.findall(text)
        if cargo:
            for _, p, f, ign in cargo:
                o.passed += int(p)
                o.failed += int(f)
                o.skipped += int(ign)
            o.counted = True
            failing += _CARGO_FAIL.findall(text)
    if not o.counted:
        go_fail = _GO_FAIL.findall(text)
        go_pkgs = _GO_PKG.findall(text)
        if go_fail or go_pkgs or _GO_PASS.search(text):
            o.failed = len(go_fail)
            o.passed = len(_GO_PASS.findall(text))
            if not o.failed and "FAIL" in go_pkgs:
                o.errors = go_pkgs.count("FAIL")
            o.counted = True
            failing += go_fail
    if not o.counted:
        r = _RSPEC.findall(text)
        if r:
            total, fails, pending = (int(x or 0) for x in r[-1])
            o.failed, o.skipped = fails, pending
            o.passed = max(total - fails - pending, 0)
            o.counted = True
    if not o.counted:
        ok = _PHPUNIT_OK.findall(text)
        bad = _PHPUNIT_BAD.findall(text)
        if bad:
            total, errs, fails, skipped = (int(x or 0) for x in bad[-1])
            o.errors, o.failed, o.skipped = errs, fails, skipped
            o.passed = max(total - errs - fails - skipped, 0)
            o.counted = True
        elif ok:
            o.passed = int(ok[-1])
            o.counted = True
    if not o.counted:
        for regex, order in ((_DOTNET, "fps"), (_MAVEN, "tfes"), (_GRADLE, "tfs")):
            found = regex.findall(text)
            if not found:
                continue
            vals = dict(zip(order, (int(x or 0) for x in found[-1]), strict=False))
            o.failed = vals.get("f", 0)
            o.errors = vals.get("e", 0)
            o.skipped = vals.get("s", 0)
            o.passed = vals["p"] if "p" in vals else max(vals.get("t", 0) - o.failed - o.errors - o.skipped, 0)
            o.counted = True
            break
    o.failing = list(dict.fromkeys(f for f in failing if f))[:50]
    if o.counted and (o.failed or o.errors):
        o.status = "failed"
    elif o.counted and o.passed:
        o.status = "passed" if not exit_code else "failed"
    elif exit_code is not None:
        o.status = "passed" if exit_code == 0 else ("error" if o.counted else "failed")
    elif o.counted:
        o.status = "error"  # e.g. "no tests ran"
    return o


# ---------------------------------------------------------------------------------------------
# errors and tracebacks

_TRACEBACK = "Traceback (most recent call last):"
_PY_EXC = re.compile(
    r"^(?:E\s+)?((?:[A-Za-z_][\w]*\.)*[A-Z][A-Za-z0-9_]*(?:Error|Exception|Exit|Interrupt|Failure|"
    r"Fault|Warning|Timeout|NotFound|Denied|Invalid))(?::\s.*|\s*)$"
)
_OTHER_EXC = re.compile(
    r"^(?:"
    r"(?:Uncaught |Unhandled )?(?:[A-Z]\w*)?(?:Error|Exception)(?: \[[\w-]+\])?: .+"  # JS / generic
    r"|panic: .+"  # Go
    r"|thread '[^']*' panicked at .+"  # Rust
    r"|error(?:\[E\d+\])?: .+"  # rustc, cargo, gcc, clang
    r"|.+?: error(?: TS\d+)?: .+"  # tsc, gcc "file:line:col: error: ..."
    r"|Exception in thread .+"  # Java
    r"|Caused by: .+"
    r"|fatal: .+"  # git
    r"|npm ERR! .+"
    r"|ERROR: .+"
    r"|FATAL: .+"
    r"|.*: command not found"
    r"|Segmentation fault.*"
    r")$"
)
# Cheap pre-check: no line can qualify unless one of these words occurs somewhere.
_ANY_EXC = re.compile(
    r"Error|Exception|Exit|Interrupt|Failure|Fault|Warning|Timeout|NotFound|Denied|Invalid|"
    r"panic|panicked|error|ERROR|fatal|FATAL|ERR!|command not found|Segmentation|Traceback"
)
_KEYWORDS = (
    r"Error|Exception|Exit|Interrupt|Failure|Fault|Warning|Timeout|NotFound|Denied|Invalid|panic|error|"
    r"ERROR|fatal|FATAL|ERR!|command not found|Segmentation"
)
# a line at column 0 (or after pytest's "E") that holds one of the keywords
_KEYWORD_LINE = re.compile(r"^(?=[^\n]*(?:" + _KEYWORDS + r"))(?:E[ \t]+\S|[^\s])[^\n]*", re.M)
# the first unindented line after a traceback's frames: the exception
_TB_END = re.compile(r"^Traceback \(most recent call last\):[^\n]*\n(?:(?:[ \t][^\n]*)?\n)*([^\s][^\n]*)", re.M)
_TB_NAMED = re.compile(r"^[A-Za-z_][\w.]*: .+")
_TB_BARE = re.compile(r"^[A-Z]\w+$")
_PY_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)')
_LOC = re.compile(r"^((?:[\w.~@+-]+/)*[\w.@+-]+\.[A-Za-z0-9]{1,8}):(\d+)(?::\d+)?:")
_FAILED_TEST_FILE = re.compile(r"^(?:FAILED|ERROR) ([^\s:]+\.\w+)::", re.M)


def exception_lines(output: str, limit: int = 10) -> list[str]:
    """The lines that name an exception or a fatal error, in order, de-duplicated.

    Python: the final line of each traceback and pytest's `E   SomeError: ...` lines; the
    exception name must start a line (or follow pytest's "E"), so source code and docs that merely
    mention an exception do not count. Others: JS `TypeError: ...`, Go `panic:`, Rust `panicked
    at`, compiler `error:` lines, Java `Exception in thread`, git `fatal:`, `npm ERR!`.
    """
    if not output or not _ANY_EXC.search(output):
        return []
    cands: list[tuple[int, str]] = []
    if _TRACEBACK in output:
        for m in _TB_END.finditer(output):
            line = m.group(1).rstrip()[:2000]
            if _PY_EXC.match(line) or _TB_NAMED.match(line) or _TB_BARE.match(line):
                cands.append((m.start(1), line))
    for m in _KEYWORD_LINE.finditer(output):
        line = m.group(0).rstrip()[:2000]
        if line.startswith(_TRACEBACK):
            continue
        if _PY_EXC.match(line) or (not line.startswith("E ") and _OTHER_EXC.match(line)):
            cands.append((m.start(), line))
    cands.sort()
    found: list[str] = []
    seen: set[str] = set()
    for _, line in cands:
        if "Warning" in line.split(":", 1)[0] and not line.startswith("E "):
            continue  # warnings summaries are not errors
        if line not in seen:
            seen.add(line)
            found.append(line)
            if len(found) >= limit:
                break
    return found


def has_traceback(output: str) -> bool:
    return bool(output) and (_TRACEBACK in output or bool(exception_lines(output, 1)))


def error_files(output: str, limit: int = 30) -> list[str]:
    """Paths named by traceback frames, `path:line:` locations and failed pytest node ids."""
    out: list[str] = []
    text = output[-60_000:] if len(output) > 60_000 else output
    for line in text.split("\n"):
        m = _PY_FRAME.match(line) or _LOC.match(line)
        if m:
            path = m.group(1)
            if "site-packages" in path or path.startswith("<") or "/lib/python" in path:
                continue
            out.append(path)
    out += _FAILED_TEST_FILE.findall(text)
    return list(dict.fromkeys(out))[:limit]


def error_text(
    headline: list[str], command: str | None, output: str, failing: list[str] = (), tail_chars: int = 4000
) -> str:
    """Content of an error event: the exception lines first (what people search for), then the
    failing tests, the command and the end of the output."""
    parts: list[str] = []
    if headline:
        parts.append("\n".join(headline))
    if failing:
        parts.append("Failing: " + ", ".join(failing[:30]))
    if command:
        parts.append(f"While running: {command.strip()[:500]}")
    tail = output.strip()
    if tail:
        if len(tail) > tail_chars:
            tail = "…" + tail[-tail_chars:]
        parts.append(tail)
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# commits

_COMMIT_LINE = re.compile(r"^\[([^\s\]]+)(?: \([^)]*\))? ([0-9a-f]{7,40})\] (.*)$", re.M)


def parse_commit(output: str) -> dict | None:
    """`[main 6322cf4] Add multiply_numbers` -> {"branch", "commit", "message"}."""
    m = _COMMIT_LINE.search(output or "")
    if not m:
        return None
    return {"branch": m.group(1), "commit": m.group(2), "message": m.group(3)[:300]}


# ---------------------------------------------------------------------------------------------
# diffs

_DEF = re.compile(
    r"^\s*(?:(?:export\s+)?(?:default\s+)?(?:async\s+)?(?:def|class|function|func|interface|struct|"
    r"enum|module|trait|impl|object)\b|(?:pub(?:\([\w:]+\))?\s+)?(?:async\s+)?(?:unsafe\s+)?fn\b|"
    r"(?:public|private|protected|internal)\b.*\()"
)


def _enclosing(lines: list[str], index: int) -> str:
    """The nearest definition line at or above `index` (0-based), as git shows in @@ headers."""
    for i in range(min(index, len(lines) - 1), max(-1, index - 400), -1):
        if _DEF.match(lines[i]):
            return lines[i].strip()[:100]
    return ""


def render_structured_patch(path: str, hunks: list, original: str | None = None) -> str:
    """Claude Code's toolUseResult.structuredPatch as a unified diff."""
    orig_lines = original.split("\n") if isinstance(original, str) else []
    out = [f"--- a/{path}", f"+++ b/{path}"]
    for h in hunks:
        if not isinstance(h, dict):
            continue
        lines = h.get("lines") if isinstance(h.get("lines"), list) else []
        os_, ol, ns, nl = (h.get(k, 0) for k in ("oldStart", "oldLines", "newStart", "newLines"))
        ctx = _enclosing(orig_lines, int(os_) - 2) if orig_lines and isinstance(os_, int) else ""
        out.append(f"@@ -{os_},{ol} +{ns},{nl} @@" + (f" {ctx}" if ctx else ""))
        out.extend(str(x) for x in lines)
    return "\n".join(out)


def compact_diff(old: str, new: str, path: str, context: int = 2, original: str | None = None) -> str:
    """A unified diff of an edit (difflib), with a couple of context lines.

    When the whole original file is known, each hunk header names the enclosing def/class, so a
    search for a function name finds the edit. Very large inputs are listed instead of diffed.
    """
    old = old or ""
    new = new or ""
    if len(old) + len(new) > 400_000:
        return "\n".join(
            [f"--- a/{path}", f"+++ b/{path}", "@@ (large edit) @@"]
            + ["-" + x for x in old.split("\n")[:200]]
            + ["+" + x for x in new.split("\n")[:200]]
        )
    a = old.split("\n")
    b = new.split("\n")
    offset = 0
    orig_lines: list[str] = []
    if original and old and old in original:
        offset = original[: original.index(old)].count("\n")
        orig_lines = original.split("\n")
    out: list[str] = []
    for line in difflib.unified_diff(a, b, fromfile=f"a/{path}", tofile=f"b/{path}", lineterm="", n=context):
        if line.startswith("@@") and (offset or orig_lines):
            m = re.match(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@", line)
            if m:
                o1, n1 = int(m.group(1)) + offset, int(m.group(3)) + offset
                ctx = _enclosing(orig_lines, o1 - 2) if orig_lines else ""
                line = f"@@ -{o1}{m.group(2) or ''} +{n1}{m.group(4) or ''} @@" + (f" {ctx}" if ctx else "")
        out.append(line)
    if not out:
        return f"--- a/{path}\n+++ b/{path}\n(no change)"
    return "\n".join(out)


_PATCH_FILE = re.compile(r"^\*\*\* (Add|Update|Delete) File: (.+?)\s*$", re.M)
_PATCH_MOVE = re.compile(r"^\*\*\* Move to: (.+?)\s*$", re.M)
_GIT_DIFF_FILE = re.compile(r"^diff --git a/(\S+) b/(\S+)", re.M)
_PLUS_FILE = re.compile(r"^\+\+\+ (?:b/)?(\S+)", re.M)


def patch_files(patch: str) -> list[tuple[str, str]]:
    """Files of a Codex apply_patch envelope (*** Add/Update/Delete File:) as (op, path); a move
    counts as the new path too."""
    out = [(op.lower(), p) for op, p in _PATCH_FILE.findall(patch or "")]
    out += [("move", p) for p in _PATCH_MOVE.findall(patch or "")]
    return out


def diff_files(text: str) -> list[str]:
    """Files of a unified/git diff (e.g. `git diff` output)."""
    files = [b for _, b in _GIT_DIFF_FILE.findall(text or "")]
    if not files:
        files = [p for p in _PLUS_FILE.findall(text or "") if p != "/dev/null"]
    return list(dict.fromkeys(files))


# ---------------------------------------------------------------------------------------------
# decisions

_DECISION_STRONG = re.compile(
    r"^(?:decision|decided|final decision)\s*:|"
    r"^(?:so,?\s+|ok(?:ay)?,?\s+)?(?:i|we)(?:'ve| have)?\s+decided\b|"
    r"^(?:so,?\s+|ok(?:ay)?,?\s+)?(?:let's|let us|i'll|i will|we'll|we will|i'm going to|we're going to)\s+go\s+with\b|"
    r"^going\s+with\b|"
    r"^(?:i|we)(?:'ve| have)?\s+(?:chose|chosen)\b|"
    r"^(?:i'm|we're|i am|we are)\s+(?:choosing|going with|opting for)\b|"
    r"^(?:i'll|i will|we'll|we will)\s+(?:opt for|choose|pick)\b",
    re.IGNORECASE,
)
_DECISION_USE = re.compile(
    r"^(?:so,?\s+|ok(?:ay)?,?\s+)?(?:i'll|i will|let's|we'll|we will|i'm going to)\s+use\b", re.IGNORECASE
)
_REASON = re.compile(
    r"\b(?:instead|rather than|because|since|so that|to avoid|over the|approach|trade-?off)\b", re.IGNORECASE
)


def is_decision(text: str) -> bool:
    """True when an assistant message opens by stating a choice.

    Conservative on purpose: only the opening sentence counts, and it must start with a
    decision phrase ("Decision:", "I decided", "Let's go with", "I'll go with", "I chose", "Going
    with", "I'm opting for"); "I'll use X" / "Let's use X" counts only when the same sentence gives
    a reason or an alternative ("instead", "rather than", "because", "since", "to avoid", "approach").
    So "I'll use grep to find it" is a message; "I'll use a dataclass instead of a dict" is a decision.
    """
    s = text.lstrip().lstrip("#*>-_ \t").lstrip()
    if not s:
        return False
    first = re.split(r"(?<=[.!?])\s|\n", s, maxsplit=1)[0][:400]
    first = first.replace("’", "'").replace("**", "")
    if _DECISION_STRONG.match(first):
        return True
    return bool(_DECISION_USE.match(first) and _REASON.search(first))


# ---------------------------------------------------------------------------------------------
# payloads and renderings


def cap_payload(payload: dict, limit: int = PAYLOAD_BUDGET_BYTES) -> dict:
    """Keep a payload under `limit` bytes of JSON: long strings are shortened, long lists cut."""

    def size(p):
        return len(json.dumps(p, ensure_ascii=False, separators=(",", ":")).encode())

    if len(repr(payload)) * 4 < limit or size(payload) <= limit:
        return payload
    for max_str, max_list in ((2000, 50), (400, 20), (120, 8), (40, 3)):
        payload = _shrink(payload, max_str, max_list)
        if size(payload) <= limit:
            return payload
    return {k: v for k, v in payload.items() if isinstance(v, (bool, int, float)) or v is None}


def _shrink(value, max_str: int, max_list: int):
    if isinstance(value, str):
        return value if len(value) <= max_str else value[:max_str] + "…"
    if isinstance(value, list):
        return [_shrink(v, max_str, max_list) for v in value[:max_list]]
    if isinstance(value, dict):
        return {k: _shrink(v, max_str, max_list) for k, v in list(value.items())[: max_list * 2]}
    return value


def render_value(value, limit: int = 2000) -> str:
    """A compact, readable rendering of a tool's input: `key: value` lines for flat objects."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict) and all(isinstance(v, (str, int, float, bool)) or v is None for v in value.values()):
        text = "\n".join(f"{k}: {v}" for k, v in value.items() if v not in (None, ""))
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            text = str(value)
    return cut_middle(text, limit)


def content_text(content, image_marker: str = "[image]") -> str:
    """Text of a content that may be a string or a list of blocks (text, image, ...)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return str(content)
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict):
            btype = block.get("type")
            if btype in ("text", "input_text", "output_text", "summary_text", "reasoning_text"):
                t = block.get("text")
                if isinstance(t, str):
                    parts.append(t)
            elif btype in ("image", "input_image", "image_url"):
                parts.append(image_marker)
            elif btype == "document":
                parts.append("[document]")
            elif isinstance(block.get("text"), str):
                parts.append(block["text"])
    return "\n".join(parts)


def hash_key(text: str) -> str:
    """A short, stable key for de-duplicating texts (not a security hash)."""
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).hexdigest()


# ---------------------------------------------------------------------------------------------
# one shell command with its result


@dataclass
class ShellResult:
    """The pieces of the event(s) for one shell command and its output."""

    type: str  # tool_call | test_run | commit | file_edit
    content: str
    files: list[str]
    payload: dict
    error: tuple[str, list[str], int] | None = None  # (content, files, number of exception lines)


def shell_result(
    command: str, output: str, exit_code: int | None, *, failed: bool | None = None, has_result: bool = True
) -> ShellResult:
    """Type, content, files and payload of a shell command's event, and its error event if any.

    `failed` is the tool's own verdict (Claude Code's is_error); else a non-zero exit code fails.
    Types: `commit` (a `git commit` that printed its "[branch sha] message" line), `test_run` (a
    test runner, with status/counts/failing tests parsed from the output), `file_edit` (sed -i,
    perl -i, `> file`, tee), else `tool_call`. Files: the paths the command names, plus those of
    a diff it printed. An error event is made when the command failed (except a reading command
    such as grep that merely found nothing) or its output holds an exception line.
    """
    if failed is None:
        failed = exit_code not in (None, 0)
    failed = bool(failed) and has_result
    info = classify_command(command)
    payload: dict = {}
    if exit_code is not None:
        payload["exit_code"] = exit_code
    type_ = "tool_call"
    files = list(info.files)
    if info.kind == "test_run":
        type_ = "test_run"
        outcome = parse_test_outcome(output, exit_code if exit_code is not None else (1 if failed else None))
        if not has_result:
            outcome.status = "unknown"
        payload.update(outcome.payload())
        payload["runner"] = info.runner
    elif info.kind == "commit":
        commit = parse_commit(output)
        if commit and not failed:
            type_ = "commit"
            payload.update(commit)
    elif info.kind == "file_edit" and not failed:
        type_ = "file_edit"
    if "diff --git" in output or output.startswith("--- a/"):
        files += diff_files(output)
    content = f"$ {command}\n{output}".rstrip("\n")
    error = None
    if has_result:
        exc = [] if info.kind == "read" and not failed else exception_lines(output)
        quiet_read = info.kind == "read" and not exc and (exit_code == 1 or not output.strip())
        if (failed and not quiet_read) or exc:
            failing = payload.get("failing_tests", [])
            err_files = error_files(output) + [f for f in files if "test" in f]
            error = (error_text(exc, command, output, failing), err_files, len(exc))
    return ShellResult(type_, content, files, payload, error)
