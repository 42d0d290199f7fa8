"""What a query looks like: how much of it is code (identifiers, paths, exception names).

The convex fusion leans on the text arm for code-like queries: an identifier, a path or
an exception line is matched by its exact words, while the meaning arm's nearest
neighbours of `modify_sys_path` are sessions that merely read similar code. Chosen by
cross-validation with the weights (`ctxsearch tune`).
"""

from __future__ import annotations

import re

# A token is code-like when it holds one of these.
_CODE = re.compile(
    r"[A-Za-z0-9]_[A-Za-z0-9]"  # snake_case
    r"|[a-z][A-Z]"  # camelCase, PascalCase inside a word
    r"|[A-Za-z]\.[A-Za-z]"  # dotted names, file.ext
    r"|/|\(|\)|::|[=<>]"  # paths, calls, scopes, comparisons
    r"|Error\b|Exception\b|^test_"
)


def codeness(query: str) -> float:
    """The share of the query's whitespace-separated tokens that look like code (0-1)."""
    tokens = query.split()
    return sum(1 for t in tokens if _CODE.search(t)) / len(tokens) if tokens else 0.0


# The share of code-like tokens at which a query counts as code. On the dev data, leaving one
# unit out, a quarter did best (held out: agent sessions hit@1 0.990 where a half gave 0.979,
# the others equal); any code token at all cost SciFact 0.004 nDCG@10.
CODE_SHARE = 0.25


def vector_weight(query: str, prose: float, code: float) -> float:
    """The convex fusion's vector weight for a query: `prose` for words, `code` once a
    quarter of its tokens or more look like code, in between linearly."""
    return prose - (prose - code) * min(1.0, codeness(query) / CODE_SHARE)
