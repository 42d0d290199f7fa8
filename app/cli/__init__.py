"""The `ctxsearch` command line."""
