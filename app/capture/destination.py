"""Where the importers and the hook send: a server over HTTP, or the local store.

A local data dir with a `ctxsearch serve` running on it is reached through that server
(see ctxsearch.discovery), which already holds the database and the model; only without
one does a command open the store itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .sinks import Http, HttpSink, ServiceSink, state_path


@dataclass(frozen=True)
class Target:
    """What a capture command was told: a data dir, and maybe a server's URL and key."""

    data_dir: Path
    url: str | None = None
    api_key: str | None = None
    exclude: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, data_dir: Path | None = None, url: str | None = None) -> Target:
        """Flags first, then CTXSEARCH_* variables, as the settings read them (without loading
        the settings machinery: the hook runs on every agent turn)."""
        import platformdirs

        env = os.environ
        return cls(
            data_dir=Path(data_dir or env.get("CTXSEARCH_DATA_DIR") or platformdirs.user_data_dir("ctxsearch")),
            url=url or env.get("CTXSEARCH_URL") or None,
            api_key=env.get("CTXSEARCH_API_KEY") or None,
            exclude=split_globs(env.get("CTXSEARCH_EXCLUDE_PROJECTS", "")),
        )

    @classmethod
    def from_settings(cls, settings: Any, url: str | None = None) -> Target:
        return cls(
            data_dir=Path(settings.data_dir),
            url=url or settings.url,
            api_key=settings.api_key,
            exclude=split_globs(settings.exclude_projects),
        )


def split_globs(value: str) -> tuple[str, ...]:
    """CTXSEARCH_EXCLUDE_PROJECTS: globs separated by commas or whitespace."""
    import re

    return tuple(g for g in re.split(r"[,\s]+", value.strip()) if g)


class Destination:
    def __init__(self, target: Target, settings: Callable[[], Any] | None = None):
        """`settings` builds the full settings, needed only to open the local store."""
        from ctxsearch.discovery import running_server

        self.target = target
        self.explicit_url = target.url
        self.url = target.url or running_server(target.data_dir)
        self._settings = settings
        self._service = None

    @property
    def remote(self) -> bool:
        return self.url is not None

    def http(self) -> Http:
        return Http(self.url, self.target.api_key)

    def state_path(self, kind: str) -> Path:
        if self.explicit_url:
            return state_path(kind, url=self.explicit_url)
        return state_path(kind, data_dir=self.target.data_dir)

    def service(self, *, load_model: bool):
        if self._service is None:
            from ctxsearch.service.facade import Service

            if self._settings is None:
                from ctxsearch.config import Settings

                settings = Settings(data_dir=self.target.data_dir, log_level="WARNING")
            else:
                settings = self._settings()
            self._service = Service.start(settings, run_worker=False, load_model=load_model)
        return self._service

    def sink(self):
        if self.remote:
            return HttpSink(self.http())
        return ServiceSink(self.service(load_model=False))

    def search(self, body: dict) -> dict:
        if self.remote:
            return self.http().json("POST", "/v1/search", body)
        from ctxsearch.schemas import SearchRequest

        return self.service(load_model=True).search(SearchRequest.model_validate(body)).model_dump(mode="json")

    def sessions(self, project_id: str, limit: int) -> dict:
        if self.remote:
            return self.http().json(
                "GET", f"/v1/projects/{quote(project_id, safe='')}/sessions", params={"limit": limit}
            )
        return self.service(load_model=False).sessions(project_id, limit).model_dump(mode="json")

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
            self._service = None


def run_import(
    kind: str,
    root: Path,
    *,
    dest: Destination,
    project: str | None,
    full: bool,
    max_content_chars: int = 100_000,
    progress=None,
    only: Path | None = None,
):
    """Import one agent's history into the destination; returns the ImportReport."""
    from .importer import ImportState, import_claude_code, import_codex

    state_file = dest.state_path(kind)
    state = ImportState(state_file) if full else ImportState.load(state_file)
    sink = dest.sink()
    run = import_claude_code if kind == "claude-code" else import_codex
    try:
        report = run(
            root,
            sink=sink,
            state=state,
            project=project,
            exclude=dest.target.exclude,
            progress=progress,
            only=only,
            max_content_chars=max_content_chars,
        )
        sink.finish()
    finally:
        sink.close()
    report.problems = [*state.problems, *report.problems, *sink.problems]
    return report
