"""What an interrupted `up` says it did: told by its own progress lines."""

from __future__ import annotations

from pathlib import Path

from pgtopo.lifecycle.up_steps import UpSteps
from tests.support.topologies import SAAS, topology_of


def test_an_interrupted_up_says_what_is_ready_what_is_not_and_what_to_run(tmp_path: Path) -> None:
    topo = topology_of(tmp_path, SAAS)
    seen: list[tuple[str, str]] = []
    steps = UpSteps(lambda s, m: seen.append((s, m)))
    steps.existing = {"pg-billing"}
    for subject, message in [("image", "checking pgtopo/postgres:17"), ("pg-us", "creating container"),
                             ("pg-us", "initdb"), ("pg-us", "ready"), ("pg-eu", "creating container"),
                             ("pg-eu", "pg_basebackup from pg-us through the relay"), ("pg-us2", "creating container"),
                             ("pg-us2", "ready"), ("pg-billing", "subscription inventory_sub to inventory_pub on pg-us"),
                             ("pg-billing", "initial copy of inventory_sub")]:
        steps(subject, message)
    assert len(seen) == 10  # every line passed on as it came
    assert steps.report(topo, topo_path=Path("saas.yaml")) == [
        "`up` of topology 't-unit' stopped before it finished",
        "ready: pg-us, pg-us2",
        "stopped halfway: pg-eu (pg_basebackup from pg-us through the relay)",
        "not started: pg-eu2",
        "running before this `up`: pg-billing",
        "subscriptions begun: inventory_sub (PostgreSQL goes on with their initial copy; the next `up` waits for it)",
        "run `pgtopo up saas.yaml` again: it keeps what is ready and does the rest"]
