"""``verify``'s configuration checks: ``/etc/pgtopo/postgresql.conf`` and ``pg_hba.conf`` against
``render.render_node``, and key live settings against both.

Once a cluster has failed over, the settings a failover changes with ALTER SYSTEM
(``FAILOVER_SETTINGS``) are not compared for its nodes. Nor are, on a Patroni member, the live
settings Patroni sets itself (``patroni.PATRONI_OWNED``, and the configuration file it writes).
"""

from __future__ import annotations

from collections.abc import Mapping

from pgtopo.model import patroni, render
from pgtopo.model.topology import Topology
from pgtopo.observe.expectations import configured_upstream, failed_over
from pgtopo.observe.health_checks import Check
from pgtopo.observe.snapshot import NodeSnapshot, Snapshot

FAILOVER_SETTINGS = frozenset({"primary_conninfo", "primary_slot_name", "synchronous_standby_names",
                               "synchronized_standby_slots", "sync_replication_slots"})
PATRONI_SETTINGS = patroni.PATRONI_OWNED | {"config_file"}
LIVE_SETTINGS = ("cluster_name", "wal_level", "hba_file", "primary_conninfo", "primary_slot_name",
                 "synchronous_standby_names", "synchronized_standby_slots", "sync_replication_slots",
                 "hot_standby_feedback", "wal_log_hints")


def parse_conf(text: str) -> dict[str, str]:
    """``name = value`` lines of a postgresql.conf, comments dropped, quotes removed."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if value.startswith("'"):
            end = 1
            chars = []
            while end < len(value):
                if value[end] == "'" and value[end + 1:end + 2] == "'":
                    chars.append("'")
                    end += 2
                elif value[end] == "'":
                    break
                else:
                    chars.append(value[end])
                    end += 1
            value = "".join(chars)
        else:
            value = value.split("#", 1)[0].strip()
        out[key.strip().lower()] = value
    return out


def _hba_lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def config_checks(topo: Topology, snap: Snapshot, *, primaries: Mapping[str, str],
                  rendered: Mapping[str, Mapping[str, str]],
                  on_disk: Mapping[str, Mapping[str, str | None]]) -> list[Check]:
    """Files in /etc/pgtopo against ``render.render_node`` and live settings against both."""
    out = []
    moved = failed_over(topo, primaries)
    for name in topo.node_names():
        skip = FAILOVER_SETTINGS if topo.cluster_of(name) in moved else frozenset()
        if topo.clusters[topo.cluster_of(name)].ha == "patroni":
            skip = skip | PATRONI_SETTINGS
        want = parse_conf(rendered[name]["postgresql.conf"])
        disk = on_disk.get(name, {})
        conf = disk.get("postgresql.conf")
        if conf is None:
            out.append(Check("config", f"{name}/postgresql.conf", False, f"cannot read {render.CONF_DIR}/postgresql.conf"))
        else:
            have = parse_conf(conf)
            diffs = [f"{k} = {have.get(k, '(unset)')!r}, rendered {want.get(k, '(unset)')!r}"
                     for k in sorted(set(want) | set(have)) if k not in skip and want.get(k) != have.get(k)]
            out.append(Check("config", f"{name}/postgresql.conf", not diffs,
                             "; ".join(diffs) if diffs else "matches the rendered file"))
        hba = disk.get("pg_hba.conf")
        if hba is None:
            out.append(Check("config", f"{name}/pg_hba.conf", False, f"cannot read {render.CONF_DIR}/pg_hba.conf"))
        else:
            same = _hba_lines(hba) == _hba_lines(rendered[name]["pg_hba.conf"])
            out.append(Check("config", f"{name}/pg_hba.conf", same,
                             "matches the rendered file" if same else "differs from the rendered file"))
        ns = snap.nodes.get(name)
        if ns is not None and ns.reachable:
            out.append(_settings_check(topo, ns, want, skip))
    return out


def _settings_check(topo: Topology, ns: NodeSnapshot, want: Mapping[str, str], skip: frozenset[str]) -> Check:
    expected = {k: want[k] for k in LIVE_SETTINGS if k in want}
    expected.setdefault("primary_conninfo", "")
    expected.setdefault("primary_slot_name", "")
    if not want.get("primary_conninfo"):
        expected["primary_slot_name"] = ""  # only meaningful with a primary_conninfo
    expected["config_file"] = f"{render.CONF_DIR}/postgresql.conf"
    diffs = []
    for key, value in sorted(expected.items()):
        live = ns.settings.get(key)
        if key in skip or live is None or live == value:
            continue
        if key == "primary_conninfo":
            now = configured_upstream(topo, ns) or live or "(unset)"
            diffs.append(f"primary_conninfo points at {now}, rendered: {topo.node(ns.node).upstream or '(unset)'}")
        else:
            diffs.append(f"{key} = {live!r}, rendered {value!r}")
    if ns.pending_restart:
        diffs.append(f"changed on disk, waiting for a restart: {', '.join(ns.pending_restart)}")
    return Check("settings", ns.node, not diffs, "; ".join(diffs) if diffs else
                 f"{len(expected) - len(skip & set(expected))} key settings as rendered")
