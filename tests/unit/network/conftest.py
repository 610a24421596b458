"""Fixtures of the network tests (helpers live in tests/support)."""

from __future__ import annotations

import pytest

from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from tests.support.topologies import GLOBAL_SAAS


@pytest.fixture(scope="module")
def topo() -> Topology:
    """global-saas: three regions, one node each."""
    return load(GLOBAL_SAAS)
