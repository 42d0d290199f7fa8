"""The shared mapping rules of ctxsearch.capture: commands, test outcomes, errors, diffs, paths."""

from __future__ import annotations

import json

import pytest

from ctxsearch.capture import mapping as m

# -- identity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Shop-API", "shop-api"),
        ("my project", "my-project"),
        ("ctxsearch", "ctxsearch"),
        ("v1.2_beta", "v1.2_beta"),
        ("Ünïcode", "-n-code"),
        ("", "unknown"),
        ("  ", "unknown"),
    ],
)
def test_normalize_project_id(name, expected):
    assert m.normalize_project_id(name) == expected


@pytest.mark.parametrize(
    "cwd, expected",
    [
        ("/home/dev/src/flask", "flask"),
        ("/home/dev/src/Flask/", "flask"),
        ("e:\\Workspace\\src\\github\\claude-code-log", "claude-code-log"),
        ("C:/Users/khair/My App", "my-app"),
        (None, "unknown"),
    ],
)
def test_project_id_from_cwd(cwd, expected):
    assert m.project_id_from_cwd(cwd) == expected


@pytest.mark.parametrize(
    "path, cwd, expected",
    [
        ("/repo/src/a.py", "/repo", "src/a.py"),
        ("/repo/src/a.py", "/repo/", "src/a.py"),
        ("/repo", "/repo", "."),
        ("/repository/a.py", "/repo", "/repository/a.py"),  # a prefix that is not a parent
        ("/etc/hosts", "/repo", "/etc/hosts"),
        ("./src/../src/a.py", "/repo", "src/a.py"),
        ("src/a.py", None, "src/a.py"),
        ("file:///repo/a.py", "/repo", "a.py"),
        ("C:\\Users\\me\\proj\\src\\a.py", "C:\\Users\\me\\proj", "src/a.py"),
        ("c:\\users\\ME\\proj\\a.py", "C:\\Users\\me\\proj", "a.py"),
    ],
)
def test_relativize(path, cwd, expected):
    assert m.relativize(path, cwd) == expected


def test_clean_files_dedupes_relativises_and_caps():
    paths = ["/r/a.py", "a.py", "", "x" * 2000, "/r/b.py", None, "/r/a.py"] + [f"f{i}.py" for i in range(300)]
    out = m.clean_files(paths, "/r")
    assert out[:2] == ["a.py", "b.py"]
    assert len(out) == 200
    assert all(1 <= len(p) <= 1024 for p in out)


# -- text ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size, limit", [(10, 100), (180_000, 100_000), (100_001, 100_000), (5000, 300), (50, 10)])
def test_cut_middle_keeps_head_and_tail_within_limit(size, limit):
    text = "".join(chr(ord("a") + i % 26) for i in range(size))
    out = m.cut_middle(text, limit)
    assert len(out) <= limit
    if size <= limit:
        assert out == text
    elif limit > 100:
        assert "characters cut …]" in out
        head, _, rest = out.partition("\n[… ")
        assert text.startswith(head) and len(head) > limit // 3
        tail = rest.split("]\n", 1)[1]
        assert text.endswith(tail) and len(tail) > limit // 4
        cut = int(rest.split(" characters cut")[0].replace(",", ""))
        assert cut == size - len(head) - len(tail)


def test_cut_marker_reads_like_the_spec():
    out = m.cut_middle("x" * 180_000, 100_000)
    assert "\n[… 80,0" in out and " characters cut …]\n" in out


def test_clean_text_and_ids():
    assert m.clean_text("a\x00b") == "ab"
    assert m.clean_text("bad \ud800 surrogate") == "bad ? surrogate"
    assert m.clean_id("id\n\twith\x01control") == "idwithcontrol"
    assert len(m.clean_id("x" * 500)) == 256


def test_strip_system_reminders():
    text = "     1→import os\n\n<system-reminder>\nWhenever you read a file...\n</system-reminder>\n"
    assert m.strip_system_reminders(text) == "     1→import os"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2025-11-19T00:38:36.000Z", "2025-11-19T00:38:36.000Z"),
        ("2025-11-19T00:38:36+02:00", "2025-11-19T00:38:36+02:00"),
        ("2025-11-19T00:38:36", "2025-11-19T00:38:36+00:00"),
        (1730841812515, "2024-11-05T21:23:32.515000Z"),
        (1730841812, "2024-11-05T21:23:32Z"),
        ("yesterday", None),
        (None, None),
        (True, None),
    ],
)
def test_normalize_timestamp(value, expected):
    assert m.normalize_timestamp(value) == expected


# -- commands -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command, kind, runner",
    [
        ("pytest", "test_run", "pytest"),
        ("pytest tests/test_a.py::test_b -x", "test_run", "pytest"),
        ("python -m pytest -q", "test_run", "python -m pytest"),
        ("python3 -m pytest tests/ 2>&1 | tail -20", "test_run", "python -m pytest"),
        ("cd /repo && uv run pytest -k slow", "test_run", "pytest"),
        ("poetry run pytest", "test_run", "pytest"),
        ("PYTHONPATH=src timeout 300 python -m unittest discover", "test_run", "python -m unittest"),
        ("tox -e py311", "test_run", "tox"),
        ("nox -s tests", "test_run", "nox"),
        ("npm test", "test_run", "npm test"),
        ("npm run test:unit -- --watch=false", "test_run", "npm run test:unit"),
        ("yarn test", "test_run", "yarn test"),
        ("pnpm test", "test_run", "pnpm test"),
        ("bun test", "test_run", "bun test"),
        ("npx jest src/cart.test.ts", "test_run", "jest"),
        ("npx vitest run", "test_run", "vitest"),
        ("npx mocha", "test_run", "mocha"),
        ("go test ./...", "test_run", "go test"),
        ("cargo test --workspace", "test_run", "cargo test"),
        ("cargo nextest run", "test_run", "cargo nextest"),
        ("mvn -q test", "test_run", "mvn test"),
        ("./gradlew test", "test_run", "gradle test"),
        ("bundle exec rspec spec/models", "test_run", "rspec"),
        ("vendor/bin/phpunit", "test_run", "phpunit"),
        ("dotnet test", "test_run", "dotnet test"),
        ("make test", "test_run", "make test"),
        ("python manage.py test", "test_run", "manage.py test"),
        ("./tests/runtests.py admin_views", "test_run", "runtests.py"),
        ("coverage run -m pytest", "test_run", "python -m pytest"),
        ("git commit -m 'Fix bug'", "commit", None),
        ("git add -A && git commit -am wip", "commit", None),
        ("git -C repo commit --amend --no-edit", "commit", None),
        ("sed -i 's/a/b/' src/x.py", "file_edit", None),
        ("cat <<'EOF' > reproduce.py\nimport pytest\npytest.main()\nEOF", "file_edit", None),
        ("echo hi >> notes.txt", "file_edit", None),
        ("printf 'x' | tee out.log", "file_edit", None),
        ("perl -pi -e 's/a/b/' lib/x.pm", "file_edit", None),
        ("cat src/a.py", "read", None),
        ("grep -rn pytest setup.cfg", "read", None),  # a word "pytest" that is not the command
        ("sed -n '1,40p' src/a.py", "read", None),
        ("git diff HEAD~1", "read", None),
        ("ls -la && pwd", "read", None),
        ("python reproduce.py", "other", None),
        ("pip install -e .", "other", None),
        ("echo pytest 2>/dev/null", "read", None),
    ],
)
def test_classify_command(command, kind, runner):
    info = m.classify_command(command)
    assert (info.kind, info.runner) == (kind, runner)


@pytest.mark.parametrize(
    "command, files, edited",
    [
        ("python -m pytest tests/test_a.py::test_b tests/test_c.py", ["tests/test_a.py", "tests/test_c.py"], []),
        ("sed -i 's/x/y/' src/a.py src/b.py", ["src/a.py", "src/b.py"], ["src/a.py", "src/b.py"]),
        ("grep -n 'def foo' src/a.py", ["src/a.py"], []),
        ("cat <<EOF > out/gen.py\nprint(1)\nEOF", ["out/gen.py"], ["out/gen.py"]),
        ("python -c 'import a.b' && cat README.md", ["README.md"], []),
        ("ls 2>/dev/null", [], []),
        ("curl https://example.com/x.json -o data.json", ["data.json"], []),
    ],
)
def test_command_files(command, files, edited):
    info = m.classify_command(command)
    assert list(info.files) == files
    assert list(info.edited) == edited


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["bash", "-lc", "ls -la && pwd"], "ls -la && pwd"),
        (["/bin/zsh", "-lc", "git status --short"], "git status --short"),
        (["git", "commit", "-am", "Fix it"], "git commit -am 'Fix it'"),
        ("rg -n foo", "rg -n foo"),
    ],
)
def test_argv_to_command(argv, expected):
    assert m.argv_to_command(argv) == expected


@pytest.mark.parametrize(
    "text, code, rest",
    [
        ("Exit code 1\nboom", 1, "boom"),
        ("Error: Exit code 127\ncommand not found", 127, "command not found"),
        ("Exit code: 2\nx", 2, "x"),
        ("all fine", None, "all fine"),
    ],
)
def test_split_exit_prefix(text, code, rest):
    assert m.split_exit_prefix(text) == (code, rest)


# -- test outcomes -------------------------------------------------------------------------------------

PYTEST_FAIL = """============================= test session starts ==============================
collected 4 items

tests/test_checkout.py ...F                                              [100%]

=================================== FAILURES ===================================
E       ZeroDivisionError: division by zero
=========================== short test summary info ============================
FAILED tests/test_checkout.py::test_empty_cart - ZeroDivisionError: division by zero
ERROR tests/test_db.py::test_conn - OSError: no db
==================== 1 failed, 3 passed, 1 error, 2 skipped in 0.12s ====================
"""


@pytest.mark.parametrize(
    "output, exit_code, status, counts, failing",
    [
        (
            PYTEST_FAIL,
            1,
            "failed",
            (3, 1, 1, 2),
            ["tests/test_checkout.py::test_empty_cart", "tests/test_db.py::test_conn"],
        ),
        ("=================== 59 passed in 0.25s ===================", 0, "passed", (59, 0, 0, 0), []),
        ("2 failed, 7 passed in 1.03s", 1, "failed", (7, 2, 0, 0), []),
        ("....\n4 passed, 1 warning in 0.10s", None, "passed", (4, 0, 0, 0), []),
        (
            "============================ no tests ran in 0.01s =============================",
            5,
            "error",
            (0, 0, 0, 0),
            [],
        ),
        (
            "FAIL: test_x (tests.test_a.ATest)\n---\nRan 5 tests in 0.003s\n\nFAILED (failures=1, errors=1)",
            1,
            "failed",
            (3, 1, 1, 0),
            ["tests.test_a.ATest.test_x"],
        ),
        ("Ran 3 tests in 0.001s\n\nOK", 0, "passed", (3, 0, 0, 0), []),
        ("Tests:       1 failed, 3 passed, 4 total\nTime: 1.2 s", 1, "failed", (3, 1, 0, 0), []),
        (" ✓ src/a.test.ts (3)\n Tests  2 failed | 10 passed (12)", 1, "failed", (10, 2, 0, 0), []),
        ("  5 passing (30ms)\n  2 failing", 1, "failed", (5, 2, 0, 0), []),
        ("--- FAIL: TestTotal (0.00s)\nFAIL\nFAIL\texample.com/shop\t0.01s", 1, "failed", (0, 1, 0, 0), ["TestTotal"]),
        ("ok  \texample.com/shop\t0.01s\n--- PASS: TestA (0.00s)", 0, "passed", (1, 0, 0, 0), []),
        (
            "test cart::empty ... FAILED\ntest result: FAILED. 8 passed; 1 failed; 2 ignored; 0 measured",
            101,
            "failed",
            (8, 1, 0, 2),
            ["cart::empty"],
        ),
        ("10 examples, 2 failures, 1 pending", 1, "failed", (7, 2, 0, 1), []),
        ("OK (12 tests, 30 assertions)", 0, "passed", (12, 0, 0, 0), []),
        ("Tests run: 10, Failures: 1, Errors: 0, Skipped: 2", 1, "failed", (7, 1, 0, 2), []),
        ("Failed!  - Failed:     1, Passed:    10, Skipped:     0, Total:    11", 1, "failed", (10, 1, 0, 0), []),
        ("12 tests completed, 3 failed, 1 skipped", 1, "failed", (8, 3, 0, 1), []),
        ("some unrelated output", 0, "passed", None, []),
        ("some unrelated output", 2, "failed", None, []),
        ("some unrelated output", None, "unknown", None, []),
    ],
)
def test_parse_test_outcome(output, exit_code, status, counts, failing):
    o = m.parse_test_outcome(output, exit_code)
    assert o.status == status
    if counts is None:
        assert not o.counted
    else:
        assert (o.passed, o.failed, o.errors, o.skipped) == counts
    assert o.failing == failing


def test_outcome_payload_is_what_condense_reads():
    p = m.parse_test_outcome(PYTEST_FAIL, 1).payload()
    assert p["status"] == "failed" and p["failed"] == 2  # failed + errors, read by run_outcome()
    assert p["counts"] == {"passed": 3, "failed": 1, "errors": 1, "skipped": 2}
    passed = m.parse_test_outcome("3 passed in 0.1s", 0).payload()
    assert passed["failed"] == 0 and passed["status"] == "passed"


# -- errors --------------------------------------------------------------------------------------------

TRACEBACK = """Running...
Traceback (most recent call last):
  File "/repo/app/main.py", line 10, in <module>
    main()
  File "/repo/app/cart.py", line 4, in total
    return s / n
ZeroDivisionError: division by zero
"""


@pytest.mark.parametrize(
    "output, expected",
    [
        (TRACEBACK, ["ZeroDivisionError: division by zero"]),
        (
            "E       AssertionError: assert 81.0 == 90.0\nE        +  where 81.0 = x",
            ["E       AssertionError: assert 81.0 == 90.0"],
        ),
        ('Traceback (most recent call last):\n  File "x", line 1\nKeyboardInterrupt', ["KeyboardInterrupt"]),
        ('Traceback (most recent call last):\n  File "x", line 1\nmodule.CustomErr: bad', ["module.CustomErr: bad"]),
        ("django.core.exceptions.ImproperlyConfigured: Set DATABASE_URL", []),  # no traceback, no Error suffix
        ("TypeError: cart.items is undefined\n    at total (cart.js:3:10)", ["TypeError: cart.items is undefined"]),
        (
            "panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:",
            ["panic: runtime error: index out of range [3] with length 3"],
        ),
        (
            "thread 'main' panicked at src/main.rs:4:5:\nattempt to divide by zero",
            ["thread 'main' panicked at src/main.rs:4:5:"],
        ),
        ("error[E0308]: mismatched types\n --> src/lib.rs:2:5", ["error[E0308]: mismatched types"]),
        (
            "src/a.ts(3,1): error TS2322: Type 'string' is not assignable",
            ["src/a.ts(3,1): error TS2322: Type 'string' is not assignable"],
        ),
        (
            "fatal: not a git repository (or any of the parent directories): .git",
            ["fatal: not a git repository (or any of the parent directories): .git"],
        ),
        ("bash: line 1: ed: command not found", ["bash: line 1: ed: command not found"]),
        ("npm ERR! missing script: test", ["npm ERR! missing script: test"]),
        # mentions are not errors: indented code, grep hits, docs, warnings
        ("    raise ValueError('no')\n  except KeyError:", []),
        ("src/x.py:10:    raise ValueError('bad')", []),
        ("tests/test_a.py::test_b PASSED\n2 passed", []),
        ("/usr/lib/python3/warnings.py:1: DeprecationWarning: old api", []),
        ("DeprecationWarning: pkg_resources is deprecated", []),
        ("", []),
    ],
)
def test_exception_lines(output, expected):
    assert m.exception_lines(output) == expected


def test_exception_lines_dedupe_and_limit():
    out = "\n".join(["ValueError: same"] * 5 + [f"KeyError: k{i}" for i in range(20)])
    lines = m.exception_lines(out, limit=3)
    assert lines == ["ValueError: same", "KeyError: k0", "KeyError: k1"]


def test_error_files_and_text():
    files = m.error_files(
        TRACEBACK + "\nFAILED tests/test_cart.py::test_total - ZeroDivisionError\n"
        'src/ui.ts:3:1: error: x\n  File "/usr/lib/python3.11/site-packages/x.py", line 2'
    )
    assert files == ["/repo/app/main.py", "/repo/app/cart.py", "src/ui.ts", "tests/test_cart.py"]
    text = m.error_text(["ZeroDivisionError: division by zero"], "python -m app", TRACEBACK, ["t::a"])
    assert text.startswith("ZeroDivisionError: division by zero\nFailing: t::a\nWhile running: python -m app\n")


@pytest.mark.parametrize(
    "output, expected",
    [
        (
            "[main 6322cf4] Add multiply_numbers function with test\n 2 files changed",
            {"branch": "main", "commit": "6322cf4", "message": "Add multiply_numbers function with test"},
        ),
        (
            "[feature/x (root-commit) a1b2c3d4] Initial",
            {"branch": "feature/x", "commit": "a1b2c3d4", "message": "Initial"},
        ),
        ("nothing to commit, working tree clean", None),
    ],
)
def test_parse_commit(output, expected):
    assert m.parse_commit(output) == expected


def test_shell_result_types_and_error_event():
    r = m.shell_result("python -m pytest tests/test_checkout.py", PYTEST_FAIL, 1)
    assert r.type == "test_run" and r.payload["status"] == "failed" and r.files == ["tests/test_checkout.py"]
    assert r.error and r.error[0].startswith("E       ZeroDivisionError: division by zero")
    ok = m.shell_result("grep -rn nothing src", "", 1)  # grep found nothing: not an error
    assert ok.type == "tool_call" and ok.error is None
    commit = m.shell_result("git commit -m x", "[main abc1234] x", 0)
    assert commit.type == "commit" and commit.payload["commit"] == "abc1234"
    failed_commit = m.shell_result("git commit -m x", "nothing to commit", 1)
    assert failed_commit.type == "tool_call" and failed_commit.error
    diff = m.shell_result("git diff", "diff --git a/src/a.py b/src/a.py\n--- a/src/a.py\n+++ b/src/a.py\n", 0)
    assert diff.files == ["src/a.py"] and diff.error is None
    printed = m.shell_result("python repro.py", TRACEBACK, 0)  # exit 0, but a traceback: still an error event
    assert printed.error and printed.error[2] == 1


# -- diffs ---------------------------------------------------------------------------------------------

ORIGINAL = "import os\n\n\ndef total(cart):\n    s = sum(cart)\n    return s / len(cart)\n"


def test_compact_diff_names_the_enclosing_function():
    old = "    return s / len(cart)"
    new = "    if not cart:\n        return 0\n    return s / len(cart)"
    d = m.compact_diff(old, new, "shop/cart.py", original=ORIGINAL)
    assert d.startswith("--- a/shop/cart.py\n+++ b/shop/cart.py\n@@ -6 +6,3 @@ def total(cart):")
    assert "+    if not cart:" in d


def test_render_structured_patch():
    hunks = [
        {
            "oldStart": 5,
            "oldLines": 2,
            "newStart": 5,
            "newLines": 3,
            "lines": ["     s = sum(cart)", "+    if not cart: return 0", "     return s / len(cart)"],
        }
    ]
    d = m.render_structured_patch("shop/cart.py", hunks, ORIGINAL)
    assert d.splitlines()[2] == "@@ -5,2 +5,3 @@ def total(cart):"
    assert d.splitlines()[-2] == "+    if not cart: return 0"


def test_patch_and_diff_files():
    patch = (
        "*** Begin Patch\n*** Update File: billing/invoice.py\n*** Move to: billing/invoices.py\n@@\n-a\n+b\n"
        "*** Add File: tests/test_codes.py\n+x\n*** Delete File: old.txt\n*** End Patch"
    )
    assert m.patch_files(patch) == [
        ("update", "billing/invoice.py"),
        ("add", "tests/test_codes.py"),
        ("delete", "old.txt"),
        ("move", "billing/invoices.py"),
    ]
    assert m.diff_files("diff --git a/x.py b/x.py\n+++ b/x.py\ndiff --git a/y/z.c b/y/z.c") == ["x.py", "y/z.c"]


# -- decisions -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Decision: keep the cache in memory.", True),
        ("I decided to drop the legacy endpoint.", True),
        ("We've decided to use Postgres.", True),
        ("Let's go with the second approach.", True),
        ("I'll go with a dataclass here.", True),
        ("Going with option B because it needs no migration.", True),
        ("I chose a set over a list.", True),
        ("**Decision:** ship it.", True),
        ("I'll use a dataclass instead of a dict.", True),
        ("Let's use SQLite since the data is tiny.", True),
        ("I'll use grep to find the definition.", False),
        ("I'll start by exploring the codebase.", False),
        ("Let me read the file.", False),
        ("The tests pass. I decided nothing yet.", False),  # only the opening sentence counts
        ("", False),
    ],
)
def test_is_decision(text, expected):
    assert m.is_decision(text) is expected


# -- payloads ------------------------------------------------------------------------------------------


def test_cap_payload_keeps_it_small():
    p = {"a": "x" * 50_000, "b": list(range(5000)), "n": 3, "ok": True}
    out = m.cap_payload(p, 16_000)
    assert len(json.dumps(out).encode()) <= 16_000
    assert out["n"] == 3 and out["ok"] is True
    small = {"exit_code": 0}
    assert m.cap_payload(small) is small


def test_render_value_and_content_text():
    assert m.render_value({"path": "a.py", "n": 2, "x": None}) == "path: a.py\nn: 2"
    blocks = [{"type": "text", "text": "hi"}, {"type": "image", "source": {"data": "AAAA"}}, "raw"]
    assert m.content_text(blocks) == "hi\n[image]\nraw"
    assert m.content_text(None) == ""
