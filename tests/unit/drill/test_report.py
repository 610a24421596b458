"""The report: series computed from the log, the self-contained page, and the folder."""

from __future__ import annotations

import json
from pathlib import Path

from pgtopo.drill import events, report, spec
from pgtopo.drill.verdict import judge
from tests.support.drill_logs import crash_log, samples
from tests.support.topologies import REPO

DRILL = spec.parse({"drill": "t", "topology": "x.yaml", "duration": 20, "expect": {"acked_lost": "reported"}})


def test_buckets_count_per_second() -> None:
    assert report.buckets([0.1, 0.2, 1.5, 2.99, 3.0, 99], end=3.5) == [2, 1, 1, 1]


def test_throughput_and_latency_series() -> None:
    lg = crash_log(reported_commits=3)
    tp = report.throughput(lg)
    ok, bad = tp["ledger@us-east"]
    assert len(ok) == 20 and ok[0] == 10 and ok[6] == 0 and ok[10] == 10
    assert sum(bad) == 5  # one in doubt, four refused
    xs, p50, p99 = report.latency_percentiles(lg)["ledger@us-east"]
    assert xs[0] == 0.5 and round(p50[0], 3) == 5.0 and len(xs) == len(p50) == len(p99)


def test_roles_per_node() -> None:
    lg = crash_log(reported_commits=3)
    lg.samples += samples("pg-x", [(1, False)])
    r = report.roles(lg)
    assert r["pg-us"][0] == (0.0, "writable") and r["pg-eu"][0] == (0.0, "replica")
    assert r["pg-x"] == [(0.25, "replica")]


def test_the_page_is_self_contained_and_shows_the_verdict() -> None:
    lg = crash_log(reported_commits=9)
    v = judge(lg, DRILL.expect)
    page = report.page(drill=DRILL, log=lg, verdict=v, images={"throughput": b"\x89PNG fake"})
    assert "<h1>drill t: <span class=\"FAIL\">FAIL</span></h1>" in page
    assert "<td>acked_lost</td>" in page and "MISMATCH: 3 acknowledged commit(s) lost, failover reported 9" in page
    assert "src='data:image/png;base64,iVBORyBmYWtl'" in page
    assert "<td>failover</td>" in page and "http" not in page  # nothing fetched from elsewhere


def test_write_makes_the_folder_and_judges_the_same_again(tmp_path: Path) -> None:
    lg = crash_log(reported_commits=3)
    v = judge(lg, DRILL.expect)
    out = report.write(tmp_path / "r", drill=DRILL, log=lg, verdict=v)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["drill.json", "events.json", "index.html", "lag.png", "latency.png", "roles.png",
                     "throughput.png", "verdict.json"]
    assert (out / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads((out / "verdict.json").read_text())
    assert data["passed"] is True and data["checks"][-2]["result"] == "PASS"
    again = judge(events.from_json(json.loads((out / "events.json").read_text())),
                  spec.parse(json.loads((out / "drill.json").read_text())).expect)
    assert again == v


def test_the_report_keeps_each_shipped_drill_as_written() -> None:
    for path in sorted((REPO / "topologies" / "drills").glob("*.yaml")):
        d = spec.load(path)
        assert spec.parse(json.loads(json.dumps(report.drill_json(d)))) == d, path.name
