"""`ctxsearch projects`, `sessions`, `show` and `timeline`: what is stored, read from the terminal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ctxsearch.cli.common import _fail, _settings, data_dir_option

if TYPE_CHECKING:
    from ctxsearch.service.facade import Service

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
project_option = click.option("--project", "-p", "project_id", required=True, help="The project.")


@contextmanager
def reading(data_dir: Path | None) -> Iterator[Service]:
    """A Service for reading (no model, no worker); a missing thing or a bad cursor exits 2."""
    from ctxsearch.service.facade import NotFound, Service
    from ctxsearch.service.paging import InvalidCursor

    svc = Service.start(_settings(data_dir), run_worker=False, load_model=False)
    try:
        yield svc
    except (NotFound, InvalidCursor) as exc:
        _fail(str(exc))
    finally:
        svc.close()


def _when(ts) -> str:
    return f"{ts:%Y-%m-%d %H:%M}" if ts else "-"


@click.command()
@data_dir_option
@json_option
def projects(data_dir: Path | None, as_json: bool) -> None:
    """The projects stored, most recently active first, with their counts."""
    with reading(data_dir) as svc:
        found = svc.projects().projects
    if as_json:
        for p in found:
            click.echo(p.model_dump_json())
        return
    if not found:
        click.echo("no projects stored yet")
    for p in found:
        click.echo(
            f"{p.project_id}  {p.sessions} sessions, {p.events} events, "
            f"{_when(p.first_activity)} .. {_when(p.last_activity)}"
        )


@click.command()
@click.argument("project_id")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="Sessions per page.")
@click.option("--cursor", default=None, help="`next_cursor` of the previous page.")
@data_dir_option
@json_option
def sessions(project_id: str, limit: int, cursor: str | None, data_dir: Path | None, as_json: bool) -> None:
    """A project's sessions, most recent first: title, time span, events and errors."""
    with reading(data_dir) as svc:
        svc.require_project(project_id)
        page = svc.sessions(project_id, limit, cursor=cursor)
    if as_json:
        for s in page.sessions:
            click.echo(s.model_dump_json())
        click.echo(json.dumps({"next_cursor": page.next_cursor}))
        return
    for s in page.sessions:
        click.echo(
            f"{s.session_id}  {_when(s.started_at)} .. {_when(s.ended_at)}  {s.event_count} events, {s.errors} errors"
        )
        click.echo(f"    {s.title}")
    if page.next_cursor:
        click.echo(f"next page: --cursor {page.next_cursor}", err=True)


@click.command()
@click.argument("event_id")
@project_option
@data_dir_option
@json_option
def show(event_id: str, project_id: str, data_dir: Path | None, as_json: bool) -> None:
    """One event in full: its whole text and its payload."""
    with reading(data_dir) as svc:
        svc.require_project(project_id)
        e = svc.event(project_id, event_id)
    if as_json:
        click.echo(e.model_dump_json())
        return
    tool = f" {e.tool}" if e.tool else ""
    click.echo(f"{e.type}{tool}  {e.id}  session {e.session_id}  {e.timestamp.isoformat()}")
    if e.files:
        click.echo("files: " + ", ".join(e.files))
    click.echo("")
    click.echo(e.content)
    if e.payload is not None:
        click.echo("")
        click.echo("payload:")
        click.echo(json.dumps(e.payload, indent=2, ensure_ascii=False))


@click.command()
@click.argument("session_id")
@project_option
@click.option("--around", default=None, help="Centre on this event (its id); else start at the first event.")
@click.option("--before", type=click.IntRange(0, 500), default=5, show_default=True)
@click.option("--after", type=click.IntRange(0, 500), default=5, show_default=True)
@click.option("--max-chars", type=click.IntRange(1), default=300, show_default=True, help="Cut each event's text.")
@data_dir_option
@json_option
def timeline(
    session_id: str,
    project_id: str,
    around: str | None,
    before: int,
    after: int,
    max_chars: int,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """A session's events in order, around one event or from the start."""
    with reading(data_dir) as svc:
        svc.require_project(project_id)
        t = svc.timeline(project_id, session_id, around, before, after, max_chars)
    if as_json:
        click.echo(t.model_dump_json())
        return
    for e in t.events:
        mark = ">" if e.id == around else " "
        text = " ".join(e.content.split()) + (" …" if e.truncated else "")
        click.echo(f"{mark}{e.position:>5}  {e.timestamp:%H:%M:%S}  {e.type:<9} {e.id}  {text}")
    click.echo(
        f"({len(t.events)} of {t.total} events"
        + (", earlier ones exist" if t.more_before else "")
        + (", later ones exist" if t.more_after else "")
        + ")",
        err=True,
    )


commands = [projects, sessions, show, timeline]
