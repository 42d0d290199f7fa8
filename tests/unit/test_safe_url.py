"""Database URLs in messages and logs never carry the password, in any of libpq's forms."""

from __future__ import annotations

import secrets

import pytest

from ctxsearch.store.db import safe_url


@pytest.mark.parametrize(
    "template, shown",
    [
        ("postgresql://app:{pw}@db.internal:5433/ctx", "postgresql://app:***@db.internal:5433/ctx"),
        ("postgres://app:{pw}@db.internal/ctx?sslmode=require", "postgresql://app:***@db.internal/ctx"),
        ("host=db.internal port=5433 user=app password={pw} dbname=ctx", "postgresql://app:***@db.internal:5433/ctx"),
        ("postgresql://app@db.internal/ctx?password={pw}", "postgresql://app:***@db.internal/ctx"),
        ("postgresql:///ctx", "postgresql://localhost/ctx"),
    ],
)
def test_password_is_masked(template, shown):
    pw = secrets.token_urlsafe(12)
    out = safe_url(template.format(pw=pw))
    assert out == shown
    assert pw not in out


def test_unparseable_url_is_not_echoed():
    pw = secrets.token_hex(8)
    out = safe_url(f"postgresql://app:{pw}@host:notaport/db")
    assert pw not in out
