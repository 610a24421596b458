"""Where the shipped topologies are, and the small topology texts several test modules decide on."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from pgtopo.model.loader import load
from pgtopo.model.topology import Topology

# tests/support/topologies.py -> the repository: independent of how deep a test module sits.
REPO = Path(__file__).resolve().parents[2]
TOPOLOGIES = REPO / "topologies"
EXAMPLES = sorted(TOPOLOGIES.glob("*.yaml"))
GLOBAL_SAAS = TOPOLOGIES / "global-saas.yaml"
FOUR_REGIONS = TOPOLOGIES / "four-regions.yaml"
REGIONAL_PARTITIONING = TOPOLOGIES / "regional-partitioning.yaml"

# Three regions; main has a direct standby in each of two regions (priority 100) and a cascade
# behind pg-eu (priority 50); billing subscribes to main with a failover slot.
SAAS = """
name: t-unit
regions: {us-east: {}, eu-west: {}, ap-south: {}}
latency:
  - {between: [us-east, eu-west], rtt_ms: 80}
  - {between: [us-east, ap-south], rtt_ms: 200}
  - {between: [eu-west, ap-south], rtt_ms: 120}
clusters:
  main:
    databases: {production: {schema: "CREATE TABLE products (id bigint PRIMARY KEY);"}}
    nodes:
      pg-us: {region: us-east, role: primary}
      pg-eu: {region: eu-west, upstream: pg-us, failover_priority: 100}
      pg-eu2: {region: eu-west, upstream: pg-eu, failover_priority: 50}
      pg-us2: {region: us-east, upstream: pg-us, failover_priority: 100}
    publications:
      inventory_pub: {database: production, tables: [products]}
  billing:
    databases: {production: {schema: "CREATE TABLE products (id bigint PRIMARY KEY);"}}
    nodes:
      pg-billing: {region: ap-south, role: primary}
    subscriptions:
      inventory_sub: {publisher: main, publication: inventory_pub, failover: true}
"""

# One region; pg-a waits for ANY 1 of pg-b and pg-c; pg-d is an asynchronous standby.
SYNC = """
name: t-unit-sync
regions: {dc1: {}}
clusters:
  main:
    synchronous: {method: any, count: 1, standbys: [pg-b, pg-c]}
    nodes:
      pg-a: {region: dc1, role: primary}
      pg-b: {region: dc1, upstream: pg-a}
      pg-c: {region: dc1, upstream: pg-a}
      pg-d: {region: dc1, upstream: pg-a}
"""


def topology_of(tmp_path: Path, text: str, *, name: str = "t.yaml") -> Topology:
    """Write ``text`` into ``tmp_path`` and load it as a topology file (every rule applies)."""
    path = tmp_path / name
    path.write_text(text)
    return load(path)


# The small two-cluster file the model's unit tests mutate, one change per test.
LAB: dict[str, Any] = {
    "name": "lab",
    "regions": {"us": {}, "eu": {}, "ap": {}},
    "latency": [
        {"between": ["us", "eu"], "rtt_ms": 80},
        {"between": ["us", "ap"], "rtt_ms": 200},
        {"between": ["eu", "ap"], "rtt_ms": 120},
    ],
    "clusters": {
        "main": {
            "databases": {"shop": {"schema": "CREATE TABLE products (id int PRIMARY KEY);\nCREATE TABLE orders (id int);"}},
            "nodes": {
                "pg-us": {"region": "us", "role": "primary"},
                "pg-eu": {"region": "eu", "upstream": "pg-us"},
                "pg-eu2": {"region": "eu", "upstream": "pg-eu"},
            },
            "publications": {"inv_pub": {"database": "shop", "tables": ["products"]}},
        },
        "billing": {
            "databases": {"shop": {"schema": "CREATE TABLE products (id int PRIMARY KEY);"}},
            "nodes": {"pg-ap": {"region": "ap", "role": "primary"}},
            "subscriptions": {"inv_sub": {"publisher": "main", "publication": "inv_pub"}},
        },
    },
}


def lab() -> dict[str, Any]:
    """A fresh copy of LAB to change."""
    return copy.deepcopy(LAB)


def write_yaml(tmp_path: Path, data: Any, *, name: str = "topo.yaml") -> Path:
    """``data`` written as a YAML file in ``tmp_path``."""
    p = tmp_path / name
    with p.open("w") as fh:
        YAML().dump(data, fh)
    return p
