"""`config_drift`: the configuration a node runs compared with what pgtopo renders for it."""

from __future__ import annotations

import dataclasses

from pgtopo.model import render
from pgtopo.observe import config_drift
from pgtopo.observe.health_checks import Check
from pgtopo.observe.snapshot import NodeSnapshot
from tests.support.checks import failed
from tests.support.global_saas import FILE_PRIMARIES, GLOBAL, healthy, snap
from tests.support.snapshots import change
from tests.support.topologies import GLOBAL_SAAS


def rendered() -> dict[str, dict[str, str]]:
    return {n: render.render_node(GLOBAL, node=n, topo_path=GLOBAL_SAAS).files for n in GLOBAL.node_names()}


def live_settings(node: str) -> dict[str, str]:
    want = config_drift.parse_conf(rendered()[node]["postgresql.conf"])
    live = {k: want[k] for k in config_drift.LIVE_SETTINGS if k in want}
    live.setdefault("primary_conninfo", "")
    live.setdefault("primary_slot_name", "")
    if not want.get("primary_conninfo"):
        live["primary_slot_name"] = ""
    live["config_file"] = "/etc/pgtopo/postgresql.conf"
    return live


def configured() -> dict[str, NodeSnapshot]:
    return {n: dataclasses.replace(ns, settings=live_settings(n)) for n, ns in healthy().items()}


def config(nodes: dict[str, NodeSnapshot], on_disk: dict[str, dict[str, str | None]],
           primaries: dict[str, str] = FILE_PRIMARIES) -> list[Check]:
    return config_drift.config_checks(GLOBAL, snap(nodes), primaries=primaries, rendered=rendered(), on_disk=on_disk)


def test_parse_conf() -> None:
    text = "# c\nwal_level = 'logical'   # why\nport = 5432\nx = 'it''s # not a comment'\n\nFoo=on\n"
    assert config_drift.parse_conf(text) == {"wal_level": "logical", "port": "5432", "x": "it's # not a comment",
                                             "foo": "on"}


def test_config_as_rendered_passes_even_from_another_file_name() -> None:
    files: dict[str, dict[str, str | None]] = {
        n: {k: v.replace("global-saas.yaml", "copy.yaml") for k, v in f.items()} for n, f in rendered().items()}
    found = config(configured(), files)
    assert failed(found) == []
    assert [(c.check, c.subject) for c in found][:3] == [
        ("config", "pg-us/postgresql.conf"), ("config", "pg-us/pg_hba.conf"), ("settings", "pg-us")]


def test_config_differences_are_named() -> None:
    files: dict[str, dict[str, str | None]] = {n: dict(f) for n, f in rendered().items()}
    files["pg-us"]["postgresql.conf"] = (files["pg-us"]["postgresql.conf"] or "").replace(
        "wal_level = 'logical'", "wal_level = 'replica'") + "work_mem = '64MB'\n"
    files["pg-us"]["pg_hba.conf"] = (files["pg-us"]["pg_hba.conf"] or "") + "host all all 0.0.0.0/0 trust\n"
    files["pg-billing"] = {"postgresql.conf": None, "pg_hba.conf": None}
    nodes = configured()
    nodes = change(nodes, "pg-eu", settings={**nodes["pg-eu"].settings, "cluster_name": "pg-us",
                                             "primary_conninfo": "host=pg-billing port=5432"},
                   pending_restart=("shared_buffers",))
    assert failed(config(nodes, files)) == [
        ("config", "pg-us/postgresql.conf", "wal_level = 'replica', rendered 'logical'; "
                                            "work_mem = '64MB', rendered '(unset)'"),
        ("config", "pg-us/pg_hba.conf", "differs from the rendered file"),
        ("settings", "pg-eu", "cluster_name = 'pg-us', rendered 'pg-eu'; primary_conninfo points at pg-billing, "
                              "rendered: pg-us; changed on disk, waiting for a restart: shared_buffers"),
        ("config", "pg-billing/postgresql.conf", "cannot read /etc/pgtopo/postgresql.conf"),
        ("config", "pg-billing/pg_hba.conf", "cannot read /etc/pgtopo/pg_hba.conf"),
    ]


def test_failover_settings_are_not_flagged_after_a_failover() -> None:
    nodes = configured()
    # After a failover to pg-eu, ALTER SYSTEM moved pg-us under pg-eu and cleared pg-eu's conninfo.
    nodes = change(nodes, "pg-eu", settings={**nodes["pg-eu"].settings, "primary_conninfo": "",
                                             "synchronized_standby_slots": "pg_us", "sync_replication_slots": "off"})
    nodes = change(nodes, "pg-us", settings={**nodes["pg-us"].settings, "primary_conninfo": "host=pg-eu",
                                             "primary_slot_name": "pg_us", "synchronized_standby_slots": ""})
    files: dict[str, dict[str, str | None]] = {n: dict(f) for n, f in rendered().items()}
    moved = {"main": "pg-eu", "billing": "pg-billing"}
    assert [c.subject for c in config(nodes, files, moved) if not c.passed] == []
    assert [c.subject for c in config(nodes, files) if not c.passed] == ["pg-us", "pg-eu"]
