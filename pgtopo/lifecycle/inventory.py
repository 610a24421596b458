"""What `up` finds of each node, and what it does with it: pure decisions on what was observed.

`up` observes every node's container (its Docker status) and the markers on its data volume,
then decides here, without Docker, what to do with it; ``deploy`` carries the decisions out.
The markers (``postgres.instance``): *ready* is the start signal, *released* says PostgreSQL
once ran on the volume, *done* says the node's setup (init.sql, slots, streaming) finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pgtopo.postgres.instance import Markers


class Action(StrEnum):
    KEEP = "keep"  # running and complete: only its configuration converges
    FINISH = "finish"  # running, its setup unfinished: the rest of it runs again (it is idempotent)
    START = "start"  # stopped, its configuration fixed in the file: install it, start, then as FINISH
    RESUME = "resume"  # a new container on a volume that served: start on its data, as the role it had
    LEAVE = "leave"  # stopped on purpose, crashed or a former primary: its data is precious, untouched
    FAIL = "fail"  # what the volume holds contradicts pgtopo's state: `up` stops and says why
    REPLACE = "replace"  # never served: remove the container, then create the node afresh
    CREATE = "create"  # nothing there yet (or nothing worth keeping on its volume): initdb or clone


@dataclass(frozen=True)
class Found:
    """One node of the file as `up` finds it."""

    node: str
    status: str  # the container's Docker status (running, exited, created, paused...)
    markers: Markers
    primary: bool  # the current primary of its cluster (the file's, or the state's after a failover)
    fenced: bool = False  # recorded as fenced or left stopped in the state
    config_changed: bool = False  # the installed postgresql.conf or pg_hba.conf differs from the file's


@dataclass(frozen=True)
class Decision:
    action: Action
    why: str = ""


def _role_conflict(found: Found) -> Decision | None:
    """When the data's role contradicts the state's: never a second primary, never a primary-less cluster."""
    m = found.markers
    if not m.data or not m.ready:
        return None
    if not found.primary and not m.standby:
        return Decision(Action.LEAVE, f"left alone: its data is a primary's (no standby.signal) but it is not the "
                                      f"current primary of its cluster: a former primary (`pgtopo rejoin FILE "
                                      f"{found.node}` brings it back as a replica)")
    if found.primary and m.standby:
        return Decision(Action.FAIL, "its data is a standby's (standby.signal), yet pgtopo's state names it the "
                                     "primary of its cluster (was the state directory's runtime.json removed after "
                                     "a failover?)")
    return None


def existing(found: Found) -> Decision:
    """A node whose container exists when `up` starts."""
    m = found.markers
    if found.status == "created":
        # Never started (a failed `up`): the container goes, its volume stays for `on_volume` to judge.
        return Decision(Action.REPLACE, "removing a container that never started (an earlier `up` failed)")
    if found.status == "running":
        if m.ready:
            return Decision(Action.KEEP) if m.done else Decision(
                Action.FINISH, "its setup did not finish in an earlier `up`: running the rest again")
        if m.released:
            # PostgreSQL stopped inside a live container (an interrupted switchover or rejoin).
            return Decision(Action.LEAVE, f"left alone: it has a data directory but PostgreSQL is not started "
                                          f"(`pgtopo rejoin FILE {found.node}` brings it back)")
        return Decision(Action.REPLACE, "removing an incomplete container from an earlier attempt")
    stopped = f"left alone: the container is {found.status} (a former primary comes back with `pgtopo rejoin`)"
    if found.status not in ("exited", "dead") or not found.config_changed:
        return Decision(Action.LEAVE, stopped)
    # Its configuration changed in the file: perhaps PostgreSQL refused the old one at its last
    # start. Start it with the new one only when nothing says it must stay down.
    if found.fenced or not m.ready:
        return Decision(Action.LEAVE, f"{stopped}; it is fenced or was stopped on purpose, so the changed "
                                      "configuration waits for `pgtopo rejoin`")
    conflict = _role_conflict(found)
    if conflict:
        return Decision(Action.LEAVE, conflict.why) if conflict.action == Action.FAIL else conflict
    return Decision(Action.START, "configuration changed in the file: installing it and starting the container")


def on_volume(found: Found) -> Decision:
    """A node whose container `up` has just created (not started) on its named volume."""
    m = found.markers
    if not m.released:
        return Decision(Action.CREATE, "removing what an earlier attempt left on the volume" if m.data else "")
    if not m.ready:
        return Decision(Action.LEAVE, "left alone: its data was stopped on purpose (fenced, or halfway through a "
                                      f"rejoin); `pgtopo rejoin FILE {found.node}` brings it back")
    if not m.data:
        return Decision(Action.FAIL, "the volume says PostgreSQL ran on it but holds no data directory; "
                                     "`pgtopo down FILE --volumes` then `pgtopo up FILE` starts afresh")
    return _role_conflict(found) or Decision(Action.RESUME, "starting on the data its volume kept")
