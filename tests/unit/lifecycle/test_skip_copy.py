"""Which new subscriptions `up` tries to start without an initial copy."""

from __future__ import annotations

from pathlib import Path

from pgtopo.lifecycle.deploy import skip_copy_possible
from pgtopo.model.loader import load
from tests.support.topologies import GLOBAL_SAAS, REPO


def test_a_copying_subscription_to_a_plain_primary_tries() -> None:
    assert skip_copy_possible(load(GLOBAL_SAAS), "billing", "inventory_sub") is None


def test_a_subscription_the_file_starts_without_copy_does_not(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(GLOBAL_SAAS.read_text().replace("copy_data: true", "copy_data: false"))
    assert skip_copy_possible(load(path), "billing", "inventory_sub") == "the file asks for no copy"


def test_a_subscription_to_a_patroni_cluster_keeps_patroni_s_slot() -> None:
    topo = load(REPO / "topologies" / "global-saas-patroni.yaml")
    cluster, sname = next((c, s) for c, cl in topo.clusters.items() for s in cl.subscriptions)
    assert skip_copy_possible(topo, cluster, sname) == "the slot is Patroni's"
