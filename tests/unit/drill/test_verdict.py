"""The verdict is pure: hand-made event logs with known answers, including ones that must FAIL."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pgtopo.drill import events
from pgtopo.drill.events import BankRead, LagSample, SubscriberRows
from pgtopo.drill.verdict import error_windows, judge, split_brains
from tests.support.drill_logs import acks, crash_log, expect, failures, final, log, read, samples, step


def test_write_unavailability_is_last_commit_on_the_old_timeline_to_first_on_the_new() -> None:
    v = judge(crash_log(reported_commits=3), expect(write_unavailable="3s"))
    (w,) = v.writers
    assert w.writer == "ledger@us-east"
    assert w.unavailable_s == pytest.approx(7.505 - 4.905)
    assert w.recovered
    assert [(s.old_timeline, s.new_timeline) for s in w.switches] == [(1, 2)]
    c = v.check("write_unavailable", "ledger@us-east")
    assert (c.measured, c.expected, c.result) == ("2.60 s", "<= 3.00 s", "PASS")
    assert c.details == ("timeline 1 -> 2: last commit at 4.91 s, first at 7.50 s",)


def test_write_unavailability_over_the_limit_fails() -> None:
    v = judge(crash_log(reported_commits=3), expect(write_unavailable="2s"))
    assert v.check("write_unavailable").result == "FAIL"
    assert not v.passed
    assert [c.key for c in v.failed] == ["write_unavailable"]


def test_a_writer_that_never_commits_on_the_new_timeline_is_unavailable_until_the_end() -> None:
    w = "ledger@eu-west"
    lg = log(attempts=[*acks(w, 0, 5), *failures(w, 5, 20, seq0=100)],
             samples=samples("pg-eu", [(k, True) for k in range(30, 40)], timeline=2), ended=20.0)
    v = judge(lg, expect(write_unavailable="60s"))
    c = v.check("write_unavailable", w)
    assert c.result == "FAIL"  # not recovered, whatever the limit
    assert c.measured == "15.09 s (not recovered)"  # 20 s (the end) - 4.905 s
    assert c.details == ("timeline 1 -> 2: last commit at 4.91 s, first never (not recovered)",)


def test_per_region_limits_judge_only_the_writers_named() -> None:
    lg = crash_log(reported_commits=3)
    lg.attempts += [*acks("ledger@eu-west", 0, 5), *acks("ledger@eu-west", 5.5, 20, seq0=100, timeline=2, node="pg-eu")]
    v = judge(lg, expect(write_unavailable={"eu-west": "1s"}))
    assert v.check("write_unavailable", "ledger@eu-west").result == "PASS"
    assert v.check("write_unavailable", "ledger@us-east").result == "-"


def test_error_windows_run_from_the_last_commit_before_a_failure_to_the_first_after() -> None:
    w = "ledger@us-east"
    attempts = [*acks(w, 0, 1), *failures(w, 1.0, 2.0, seq0=20), *acks(w, 2.0, 3.0, seq0=30),
                *failures(w, 3.0, 3.5, seq0=40)]
    windows = [(round(a, 3), round(b, 3)) for a, b in error_windows(attempts, end=4.0)]
    assert windows == [(0.905, 2.005), (2.905, 4.0)]
    v = judge(log(attempts=attempts, ended=4.0), expect(error_window="1s"))
    c = v.check("error_window")
    assert c.result == "FAIL" and c.measured == "1.10 s from 0.91 s"  # the longer of 1.100 s and 1.095 s


@pytest.mark.parametrize(("reported", "result"), [(3, "PASS"), (4, "PASS"), (2, "FAIL"), (5, "FAIL")])
def test_acked_lost_reported_allows_the_commits_in_flight_and_no_more(reported: int, result: str) -> None:
    # 3 acknowledged commits lost, 1 more in flight when the primary died: 3 or 4 reported is right.
    v = judge(crash_log(reported_commits=reported), expect(acked_lost="reported"))
    c = v.check("acked_lost")
    assert c.result == result, c.details
    assert c.measured == "3 commit(s), 300 B of WAL"
    assert v.loss.lost == 3 and v.loss.in_doubt_missing == 1
    if result == "FAIL":
        assert any("MISMATCH" in d for d in c.details)


def test_acked_lost_reported_fails_when_lost_commits_reach_past_the_wal_reported() -> None:
    c = judge(crash_log(reported_commits=3, reported_bytes=200), expect(acked_lost="reported")).check("acked_lost")
    assert c.result == "FAIL"
    assert "MISMATCH: lost commits reach 300 B past the fork, failover reported 200 B" in c.details[1]


def test_acked_lost_reported_needs_an_exact_report() -> None:
    c = judge(crash_log(reported_commits=3, exact=False), expect(acked_lost="reported")).check("acked_lost")
    assert c.result == "FAIL"
    assert "the failover could not measure its loss exactly" in c.details[1]


def test_acked_lost_zero_fails_on_any_loss_and_a_count_allows_that_many() -> None:
    lg = crash_log(reported_commits=3)
    assert judge(lg, expect(acked_lost=0)).check("acked_lost").result == "FAIL"
    assert judge(lg, expect(acked_lost=3)).check("acked_lost").result == "PASS"
    assert judge(lg, expect(acked_lost=0)).loss.lost_by_workload == {"ledger@us-east": 3}


def test_a_loss_no_failover_explains_fails_reported() -> None:
    w = "ledger@us-east"
    lg = log(attempts=acks(w, 0, 1), final=final({w: range(1, 8)}))  # seqs 8, 9, 10 acknowledged, gone
    v = judge(lg, expect(acked_lost="reported"))
    c = v.check("acked_lost")
    assert c.result == "FAIL" and v.loss.unexplained == 3
    assert "3 lost commit(s) were on no node a failover replaced" in c.details


def test_no_primary_at_the_end_fails_acked_lost_with_the_reason() -> None:
    lg = log(attempts=acks("ledger@us-east", 0, 1))
    lg.final = events.Final("main", None, (), None, error="no node of cluster main accepts writes")
    c = judge(lg, expect(acked_lost=0)).check("acked_lost")
    assert (c.measured, c.result, c.details) == ("unknown", "FAIL", ("no node of cluster main accepts writes",))


def test_stale_reads_per_strategy() -> None:
    lg = log(reads=[read("lsn", 1, "ok"), read("lsn", 2, "ok", served_by="primary", waited=0.08),
                    read("replica-only", 1, "stale"), read("replica-only", 2, "ok"), read("replica-only", 3, "error")])
    v = judge(lg, expect(stale_reads=0))
    assert v.check("stale_reads", "lsn").result == "PASS"
    ro = v.check("stale_reads", "replica-only")
    assert (ro.measured, ro.result) == ("1 of 2", "FAIL")
    assert v.reads["lsn"].replica_share == 0.5 and v.reads["lsn"].max_waited_s == 0.08
    per = judge(lg, expect(stale_reads={"lsn": 0}))
    assert per.check("stale_reads", "replica-only").result == "-" and per.passed


def test_bank_violations_on_any_node() -> None:
    lg = log(bank_total=1000, bank_accounts=10,
             bank=[BankRead(1, 0.25, "pg-us", 1000, 10), BankRead(1, 0.25, "pg-billing", 990, 10),
                   BankRead(2, 0.5, "pg-eu", None, None, error="relation does not exist")])
    v = judge(lg, expect(bank_violations=0))
    c = v.check("bank_violations")
    assert (c.measured, c.result) == ("1 of 2 reads", "FAIL")
    assert c.details == ("pg-billing at 0.25 s: 10 accounts holding 990 (expected 10 holding 1000)", "pg-billing: 1")
    assert judge(log(bank_total=1000, bank_accounts=10, bank=lg.bank[:1]), expect(bank_violations=0)).passed


def test_split_brain_is_two_writable_nodes_of_a_cluster_at_one_tick() -> None:
    lg = log(samples=samples("pg-us", [(k, True) for k in range(0, 12)])
             + samples("pg-eu", [(k, False) for k in range(0, 8)] + [(k, True) for k in range(8, 20)])
             + samples("pg-billing", [(k, True) for k in range(0, 20)], cluster="billing"))
    found = split_brains(lg)
    assert [(s.cluster, s.nodes, s.start, s.end, s.ticks) for s in found] == [("main", ("pg-eu", "pg-us"), 2.0, 2.75, 4)]
    c = judge(lg, expect(split_brain=False)).check("split_brain")
    assert (c.measured, c.result) == ("yes", "FAIL")
    assert c.details == ("pg-eu, pg-us writable in cluster main from 2.00 s to 2.75 s (4 samples)",)
    assert judge(lg, expect(split_brain=True)).check("split_brain").result == "PASS"


def test_no_split_brain_when_writable_nodes_never_share_a_tick() -> None:
    lg = crash_log(reported_commits=3)
    assert split_brains(lg) == []
    assert judge(lg, expect(split_brain=False)).check("split_brain").result == "PASS"


def test_logical_completeness_missing_duplicated_and_extra_rows() -> None:
    w = "ledger@us-east"
    subs = (SubscriberRows("pg-billing", "inventory_sub", {w: {1: 1, 2: 2, 3: 1, 9: 1}}),
            SubscriberRows("pg-other", "other_sub", {w: {1: 1, 2: 1, 3: 1, 4: 1}}))
    lg = log(final=final({w: [1, 2, 3, 4]}, subscribers=subs))
    v = judge(lg, expect(logical_complete=True))
    bad = v.check("logical_complete", "inventory_sub on pg-billing")
    assert (bad.measured, bad.result) == ("1 missing, 1 duplicated, 1 extra", "FAIL")
    assert v.check("logical_complete", "other_sub on pg-other").result == "PASS"


def test_logical_complete_expected_but_no_subscriber_read_fails() -> None:
    c = judge(log(final=final({})), expect(logical_complete=True)).check("logical_complete")
    assert (c.measured, c.result) == ("no subscriber was read", "FAIL")


def test_a_failed_step_fails_the_drill_and_skipped_steps_are_shown() -> None:
    lg = log(steps=[step(0, "kill", start=1, end=1.1), step(1, "failover", start=2, end=3, status="failed",
                                                             detail="no safe candidate"),
                    step(2, "rejoin", start=3, end=3, status="skipped")])
    v = judge(lg, expect(split_brain=False))
    assert [(c.subject, c.result) for c in v.checks if c.key == "step"] == [
        ("0: kill", "PASS"), ("1: failover", "FAIL"), ("2: rejoin", "-")]
    assert not v.passed


def test_lag_maximum_per_edge() -> None:
    lg = log(lags=[LagSample(1, 0.25, "pg-us", "pg-eu", "physical", 100, 0.1),
                   LagSample(2, 0.5, "pg-us", "pg-eu", "physical", 4000, None),
                   LagSample(2, 0.5, "pg-us", "inventory_sub", "logical", None, None)])
    v = judge(lg, expect(split_brain=False))
    assert v.lag_max == {"pg-us -> pg-eu": (4000, 0.1), "pg-us -> inventory_sub": (None, None)}


def test_the_log_round_trips_through_json_and_judges_the_same() -> None:
    lg = crash_log(reported_commits=4)
    assert lg.final is not None
    lg.final = dataclasses.replace(lg.final, subscribers=(
        SubscriberRows("pg-billing", "inventory_sub", {"ledger@us-east": {1: 1, 2: 1}}),))
    lg.messages.append((1.0, "step", "0: kill primary"))
    back = events.from_json(json.loads(json.dumps(events.to_json(lg))))
    assert back == lg
    e = expect(acked_lost="reported", write_unavailable="5s", logical_complete=True)
    assert judge(back, e) == judge(lg, e)
