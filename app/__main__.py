"""`python -m ctxsearch`: the command line."""

from ctxsearch.cli.main import main

main()
