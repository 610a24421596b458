"""What a failover lost: the fork point on the new timeline, and the old primary's WAL after it.

The old primary's WAL is read with pg_waldump from its stopped data volume; when that cannot be
done, the best known position gives a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgtopo.errors import PgtopoError
from pgtopo.ha.failover import Plan
from pgtopo.ha.standby import on_volume
from pgtopo.model.topology import Topology
from pgtopo.postgres import instance
from pgtopo.postgres.lsn import fmt_bytes, format_lsn, lsns_in, parse_lsn
from pgtopo.postgres.sql import query
from pgtopo.runtime import gateway


@dataclass(frozen=True)
class Loss:
    bytes: int | None
    commits: int | None
    fork_lsn: int | None
    old_end_lsn: int | None
    exact: bool
    source: str

    def text(self) -> str:
        if self.bytes is None:
            return f"unknown ({self.source})"
        commits = "" if self.commits is None else f", {self.commits} committed transaction(s)"
        prefix = "" if self.exact else "at least "
        return f"{prefix}{fmt_bytes(self.bytes)} ({self.bytes} bytes) of WAL{commits} ({self.source})"


def fork_point(topo: Topology, node: str) -> tuple[int, int, int]:
    """(parent timeline, switch LSN, new timeline) from the new timeline's history file."""
    rows = query(topo, node, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)", step="read timeline")
    tli_hex = str(rows[0][0])
    hist = query(topo, node, "SELECT pg_read_file('pg_wal/' || %s || '.history')", (tli_hex,), step="read history")
    last = [ln for ln in str(hist[0][0]).splitlines() if ln.strip() and not ln.startswith("#")][-1]
    parent, switch, *_ = last.split()
    return int(parent), parse_lsn(switch) or 0, int(tli_hex, 16)


def parse_waldump(output: str, *, start: int) -> tuple[int, int]:
    """(end of WAL, commits) from ``pg_waldump --stats=record`` run from ``start``."""
    commits = 0
    end = start
    for line in output.splitlines():
        parts = line.split()
        if parts and parts[0] == "Transaction/COMMIT" and len(parts) > 1 and parts[1].isdigit():
            commits = int(parts[1])
        if "could not find a valid record after" in line:
            return start, 0
        if line.startswith("WAL statistics between"):
            found = lsns_in(line)
            if len(found) == 2:
                end = found[1]
        elif "pg_waldump: error" in line:
            found = lsns_in(line)
            if found:
                end = max(end, found[-1])
    return end, commits


def measure_loss(topo: Topology, plan: Plan, *, parent_tli: int, fork: int) -> Loss:
    """What the old primary wrote after the fork point, read from its stopped volume.

    Exact when its container is stopped (killed, crashed or fenced by stop); otherwise the best
    known position from the snapshot gives a lower bound.
    """
    c = gateway.find(topo.name, plan.old_primary)
    if c is not None and gateway.status(c) in ("exited", "dead", "created"):
        cmd = ["sh", "-c", f"rm -f {instance.READY_MARKER}; pg_waldump --path={instance.PGDATA}/pg_wal "
               f"--timeline={parent_tli} --start={format_lsn(fork)} --stats=record 2>&1"]
        try:
            _rc, out = on_volume(topo, c, cmd, step="read the old primary's WAL")
        except PgtopoError as exc:
            out = f"failed: {exc.message}"
        if "WAL statistics" in out or "could not find a valid record" in out:
            end, commits = parse_waldump(out, start=fork)
            return Loss(bytes=end - fork, commits=commits, fork_lsn=fork, old_end_lsn=end, exact=True,
                        source=f"{plan.old_primary}'s WAL read from its volume: {format_lsn(end)}; "
                               f"timeline {parent_tli} ended at {format_lsn(fork)} on {plan.candidate}")
    ref = plan.reference_lsn
    if ref is None:
        return Loss(bytes=None, commits=None, fork_lsn=fork, old_end_lsn=None, exact=False,
                    source=f"{plan.old_primary}'s last position is unknown")
    return Loss(bytes=max(0, ref - fork), commits=None, fork_lsn=fork, old_end_lsn=ref, exact=False,
                source=f"against {plan.reference}")
