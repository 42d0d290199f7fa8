"""The web page's escaping and chart, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ctxsearch.web.render import activity_chart, event_url, highlight, search_url, session_url, when


def test_highlight_turns_only_the_search_marks_into_mark():
    out = str(highlight('<b>KeyError</b> in <script>alert("x")</script> <B>no</B> <b onclick=1>x</b> & </b>'))
    assert out.startswith("<mark>KeyError</mark> in &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;")
    assert "&lt;B&gt;no&lt;/B&gt;" in out and "&lt;b onclick=1&gt;" in out and "&amp;" in out
    assert "<script" not in out and "<b" not in out


def test_links_encode_every_id():
    assert event_url("p", "a/b?c#d e") == "/projects/p/events/a%2Fb%3Fc%23d%20e"
    assert session_url("p q", "s/1", at="e&1") == "/projects/p%20q/sessions/s%2F1?at=e%261"
    assert search_url({"query": "x", "types": ["error", "note"], "explain": True, "cursor": None}) == (
        "/search?query=x&types=error&types=note&explain=on"
    )


def test_when_is_a_time_element_in_utc():
    t = datetime(2026, 11, 20, 12, 0, 5, tzinfo=UTC) + timedelta()
    assert str(when(t)) == '<time datetime="2026-11-20T12:00:05Z">2026-11-20 12:00:05 UTC</time>'
    assert str(when(None)) == "—"


def test_chart_draws_a_bar_per_nonzero_count_scaled_to_the_largest():
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    buckets = [{"start": start, "tool_calls": 4, "errors": 0}, {"start": start, "tool_calls": 2, "errors": 1}]
    svg = str(activity_chart({"start": start, "end": start + timedelta(minutes=2), "slice_s": 60, "buckets": buckets}))
    assert svg.count('class="bar-tools"') == 2 and svg.count('class="bar-errors"') == 1
    assert 'role="img"' in svg and "<title" in svg and "6 tool calls and 1 error in 2 slices" in svg
    assert "style=" not in svg
