"""`ctxsearch bench --soak`: half a minute of mixed load with PostgreSQL killed once and the warm
tier rebuilt once loses no acknowledged event, answers no 5xx but 503, and is ready again
within 10 s of the kill."""

from __future__ import annotations

import json

from click.testing import CliRunner

from ctxsearch.cli.main import main


def test_soak_with_a_kill_and_a_rebuild(own_data_dir):
    r = CliRunner().invoke(
        main,
        [
            "bench",
            "--soak",
            "0.5",
            "--clients",
            "4",
            "--rate",
            "8",
            "--kills",
            "1",
            "--rebuilds",
            "1",
            "--seed-docs",
            "200",
            "--data-dir",
            str(own_data_dir / "soak"),
            "--json",
        ],
    )
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.exit_code == 0, (out["failures"], out["errors"])
    assert out["ok"] and out["failures"] == []
    assert out["events_lost"] == 0
    assert out["events_acknowledged"] > out["seeded_events"] == 200  # the load's batches were stored too
    assert out["server_errors"] == 0 and out["timeouts"] == 0 and out["connection_errors"] == 0
    (kill,) = [f for f in out["faults"] if f["kind"] == "kill"]
    (rebuild,) = [f for f in out["faults"] if f["kind"] == "rebuild"]
    assert kill["new_pid"] not in (None, kill["old_pid"])
    assert kill["recovery_s"] < 10
    assert rebuild["kind"] == "rebuild" and "error" not in rebuild and rebuild["rows"] >= 200
    assert out["requests_by_kind"]["search"].get("200", 0) > 0
    assert out["requests_by_kind"]["ingest"].get("202", 0) > 0
    assert out["drained"]
    assert len(out["windows"]) == 3 and out["windows"][-1]["server_rss_mb"] is not None
    assert out["search_p99_ms"] is not None


def test_soak_refuses_a_data_dir_in_use(own_data_dir):
    (own_data_dir / "something").write_text("")
    r = CliRunner().invoke(main, ["bench", "--soak", "0.5", "--data-dir", str(own_data_dir)])
    assert r.exit_code == 2 and "not empty" in r.output
