"""`python -m ctxsearch`: the command line."""

from ctxsearch.cli import run

run()
