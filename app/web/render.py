"""What the templates need beyond Jinja2: links, times, highlighted snippets and the
activity chart (inline SVG), each escaped as it is built."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup, escape


def seg(value: str) -> str:
    """One path segment: every character that could end or change it is encoded."""
    return quote(value, safe="")


def project_url(project_id: str, **query: Any) -> str:
    return f"/projects/{seg(project_id)}" + _query(query)


def session_url(project_id: str, session_id: str, **query: Any) -> str:
    return f"/projects/{seg(project_id)}/sessions/{seg(session_id)}" + _query(query)


def event_url(project_id: str, event_id: str) -> str:
    return f"/projects/{seg(project_id)}/events/{seg(event_id)}"


def search_url(params: dict[str, Any]) -> str:
    return "/search" + _query(params)


def _query(params: dict[str, Any]) -> str:
    pairs = []
    for k, v in params.items():
        if v is None or v == "" or v is False:
            continue
        for item in v if isinstance(v, list | tuple) else [v]:
            pairs.append((k, "on" if item is True else str(item)))
    return "?" + urlencode(pairs) if pairs else ""


def when(value: datetime | None) -> Markup:
    """A <time> element in UTC, to the second."""
    if value is None:
        return Markup("—")
    utc = value.astimezone(UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        utc.isoformat().replace("+00:00", "Z"), utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    )


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.3g} s" if seconds < 10 else f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s} s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m} min"
    return f"{h // 24} d {h % 24} h"


def highlight(snippet: str) -> Markup:
    """A search snippet, escaped, with only the search's own <b>…</b> marks turned into <mark>:
    whatever else the stored text holds (tags, scripts) shows as text."""
    safe = str(escape(snippet))
    return Markup(safe.replace("&lt;b&gt;", "<mark>").replace("&lt;/b&gt;", "</mark>"))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


# The chart's drawing area, in SVG user units; the CSS scales it to the page's width.
_W, _H, _LEFT, _BOTTOM, _TOP = 640, 200, 36, 28, 12


def activity_chart(activity: dict) -> Markup:
    """Tool calls and errors per time slice as grouped bars, with axes and a legend. The
    same numbers are in the table the template puts beside it (the text alternative)."""
    buckets = activity["buckets"]
    n = len(buckets)
    top = max([1] + [max(b["tool_calls"], b["errors"]) for b in buckets])
    plot_w, plot_h = _W - _LEFT - 8, _H - _BOTTOM - _TOP
    slot = plot_w / n
    bar = max(1.0, slot * 0.4)
    tools, errors = sum(b["tool_calls"] for b in buckets), sum(b["errors"] for b in buckets)
    parts = [
        Markup(
            '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="chart-title chart-desc"'
            ' preserveAspectRatio="xMidYMid meet" focusable="false">'
        ).format(w=_W, h=_H),
        Markup('<title id="chart-title">Tool calls and errors over time</title>'),
        Markup('<desc id="chart-desc">{}</desc>').format(
            f"{_count(tools, 'tool call')} and {_count(errors, 'error')} in {_count(n, 'slice')} of "
            f"{duration(activity['slice_s'])}; the table below has each slice's counts."
        ),
    ]
    base = _TOP + plot_h
    for value in sorted({0, top // 2, top}):
        y = base - plot_h * value / top
        parts.append(
            Markup('<line class="grid" x1="{x1}" y1="{y:.1f}" x2="{x2}" y2="{y:.1f}"/>').format(
                x1=_LEFT, x2=_W - 8, y=y
            )
        )
        parts.append(
            Markup('<text class="axis" x="{x}" y="{y:.1f}" text-anchor="end">{v}</text>').format(
                x=_LEFT - 4, y=y + 4, v=value
            )
        )
    for i, b in enumerate(buckets):
        x = _LEFT + i * slot + (slot - 2 * bar) / 2
        for j, (key, cls) in enumerate((("tool_calls", "bar-tools"), ("errors", "bar-errors"))):
            h = plot_h * b[key] / top
            if h:
                parts.append(
                    Markup('<rect class="{c}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}"/>').format(
                        c=cls, x=x + j * bar, y=base - h, w=bar, h=h
                    )
                )
    for label, x, anchor in (
        (activity["start"], _LEFT, "start"),
        (activity["end"], _W - 8, "end"),
    ):
        parts.append(
            Markup('<text class="axis" x="{x}" y="{y}" text-anchor="{a}">{t}</text>').format(
                x=x, y=_H - 8, a=anchor, t=label.astimezone(UTC).strftime("%H:%M:%S")
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
