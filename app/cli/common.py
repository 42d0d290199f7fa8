"""What every command shares: the settings, user errors (exit 2), logging, the data-dir option."""

from __future__ import annotations

from pathlib import Path

import click

from ctxsearch.cli.options import data_dir_option, url_option
from ctxsearch.config import Settings

__all__ = ["_fail", "_is_loopback", "_logging", "_needs", "_settings", "data_dir_option", "url_option"]


def _settings(data_dir: Path | None = None, **overrides) -> Settings:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return Settings(**values)
    except ValidationError as exc:
        from ctxsearch.validation import validation_message

        # validation_message shows field and reason, never the value; an API key is also a
        # key of api_keys, so that part of a field's path is never shown either.
        errors = [{**e, "loc": _without_keys(tuple(e.get("loc", ())))} for e in exc.errors()]
        _fail(f"invalid settings: {validation_message(errors)}")
    except SettingsError as exc:
        _fail(f"invalid settings: {exc} (not valid JSON?)")


def _without_keys(loc: tuple) -> tuple:
    return ("api_keys", "<key>", *loc[2:]) if len(loc) > 1 and loc[0] == "api_keys" else loc


def _fail(message: str) -> None:
    raise click.UsageError(message)


def _logging(settings: Settings) -> None:
    from ctxsearch.http.observability import configure_logging

    configure_logging(settings.log_level, settings.log_format)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _needs(extra: str, *modules: str) -> None:
    """Exit 2 with the install command when an optional dependency of this command is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        _fail(
            f"this command needs the [{extra}] extra ({', '.join(missing)} missing): "
            f"pip install -c requirements.lock 'ctxsearch[{extra}]'"
        )
