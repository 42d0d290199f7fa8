"""The `ctxsearch` command line.

`run` is the entry point: `ctxsearch hook ...` goes straight to the lean hook commands (an
agent runs them on every turn), everything else to the full command group.
"""

from __future__ import annotations

import sys


def run() -> None:
    if sys.argv[1:2] == ["hook"]:
        from ctxsearch.cli.hook import hook

        hook(args=sys.argv[2:], prog_name="ctxsearch hook")
    else:
        from ctxsearch.cli.main import main

        main()
