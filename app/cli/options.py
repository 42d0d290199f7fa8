"""Options several commands share, kept free of heavy imports (the hook loads this module)."""

from __future__ import annotations

from pathlib import Path

import click

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the embedded PostgreSQL keeps its data (default: CTXSEARCH_DATA_DIR, else the user data dir).",
)

url_option = click.option(
    "--url",
    default=None,
    help="Send to this ctxsearch server (CTXSEARCH_URL; key from CTXSEARCH_API_KEY) instead of the local data dir.",
)
