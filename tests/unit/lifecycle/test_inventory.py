"""What `up` does with what it finds: every case of the pure decisions, no Docker."""

from __future__ import annotations

import pytest

from pgtopo.lifecycle import inventory
from pgtopo.lifecycle.inventory import Action, Found
from pgtopo.postgres.instance import Markers

NOTHING = Markers(ready=False, released=False, done=False, data=False, standby=False)
PRIMARY_DONE = Markers(ready=True, released=True, done=True, data=True, standby=False)
REPLICA_DONE = Markers(ready=True, released=True, done=True, data=True, standby=True)
PRIMARY_UNFINISHED = Markers(ready=True, released=True, done=False, data=True, standby=False)
STOPPED_ON_PURPOSE = Markers(ready=False, released=True, done=True, data=True, standby=False)
HALF_CLONED = Markers(ready=False, released=False, done=False, data=True, standby=False)


def found(markers: Markers, *, status: str = "running", primary: bool = True, fenced: bool = False,
          config_changed: bool = False) -> Found:
    return Found(node="pg-a", status=status, markers=markers, primary=primary, fenced=fenced,
                 config_changed=config_changed)


@pytest.mark.parametrize(("markers", "action"), [
    (PRIMARY_DONE, Action.KEEP),
    (PRIMARY_UNFINISHED, Action.FINISH),  # init.sql failed or was interrupted: run the rest again
    (STOPPED_ON_PURPOSE, Action.LEAVE),  # a rejoin or switchover stopped PostgreSQL in its container
    (HALF_CLONED, Action.REPLACE),
    (NOTHING, Action.REPLACE),
])
def test_a_running_container(markers: Markers, action: Action) -> None:
    assert inventory.existing(found(markers)).action == action


def test_an_unfinished_setup_says_so() -> None:
    assert "did not finish" in inventory.existing(found(PRIMARY_UNFINISHED)).why


def test_a_container_that_never_started_is_replaced_whatever_its_volume_holds() -> None:
    assert inventory.existing(found(PRIMARY_DONE, status="created")).action == Action.REPLACE


@pytest.mark.parametrize("status", ["exited", "dead", "paused"])
def test_a_stopped_container_is_left_alone_when_its_configuration_did_not_change(status: str) -> None:
    d = inventory.existing(found(PRIMARY_DONE, status=status))
    assert d.action == Action.LEAVE and f"the container is {status}" in d.why


def test_a_stopped_node_whose_configuration_was_fixed_is_started() -> None:
    assert inventory.existing(found(PRIMARY_DONE, status="exited", config_changed=True)).action == Action.START
    assert inventory.existing(found(REPLICA_DONE, status="exited", primary=False,
                                    config_changed=True)).action == Action.START
    # Paused is not stopped: nothing is installed into it.
    assert inventory.existing(found(PRIMARY_DONE, status="paused", config_changed=True)).action == Action.LEAVE


@pytest.mark.parametrize(("f", "words"), [
    (found(PRIMARY_DONE, status="exited", fenced=True, config_changed=True), "fenced"),
    (found(STOPPED_ON_PURPOSE, status="exited", config_changed=True), "fenced"),
    # A former primary (another node was promoted): never started as a second primary.
    (found(PRIMARY_DONE, status="exited", primary=False, config_changed=True), "former primary"),
    (found(REPLICA_DONE, status="exited", primary=True, config_changed=True), "standby"),
])
def test_a_fixed_configuration_never_starts_a_node_that_must_stay_down(f: Found, words: str) -> None:
    d = inventory.existing(f)
    assert d.action == Action.LEAVE and words in d.why


def test_a_new_volume_or_one_that_never_served_is_initialised() -> None:
    assert inventory.on_volume(found(NOTHING, status="created")) == inventory.Decision(Action.CREATE)
    d = inventory.on_volume(found(HALF_CLONED, status="created"))
    assert d.action == Action.CREATE and "earlier attempt" in d.why


@pytest.mark.parametrize(("markers", "primary"), [
    (PRIMARY_DONE, True), (REPLICA_DONE, False), (PRIMARY_UNFINISHED, True),
])
def test_a_volume_that_served_is_resumed_in_the_role_it_had(markers: Markers, primary: bool) -> None:
    assert inventory.on_volume(found(markers, status="created", primary=primary)).action == Action.RESUME


def test_after_a_failover_the_former_primary_is_not_started_on_its_volume() -> None:
    d = inventory.on_volume(found(PRIMARY_DONE, status="created", primary=False))
    assert d.action == Action.LEAVE and "`pgtopo rejoin FILE pg-a`" in d.why


def test_a_fenced_volume_stays_down() -> None:
    d = inventory.on_volume(found(STOPPED_ON_PURPOSE, status="created", primary=False))
    assert d.action == Action.LEAVE and "stopped on purpose" in d.why


def test_a_standby_the_state_calls_primary_is_a_failure() -> None:
    d = inventory.on_volume(found(REPLICA_DONE, status="created", primary=True))
    assert d.action == Action.FAIL and "runtime.json" in d.why


def test_a_released_volume_without_data_is_a_failure() -> None:
    lost = Markers(ready=True, released=True, done=True, data=False, standby=False)
    assert inventory.on_volume(found(lost, status="created")).action == Action.FAIL
