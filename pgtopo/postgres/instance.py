"""One PostgreSQL instance inside its container: initialise, clone, start, wait, run SQL.

Everything here goes through ``gateway.exec_in``; failures name the node and the step and
carry the container's last log lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

from pgtopo.errors import OperationFailed
from pgtopo.model.render import CONF_DIR, PASSFILE, q
from pgtopo.runtime import gateway
from pgtopo.runtime.waiting import wait_for

if TYPE_CHECKING:  # only gateway.py imports docker at run time
    from docker.models.containers import Container

# The node's named volume holds PGDATA in its data/ directory and, beside it (never inside:
# pg_basebackup and pg_rewind copy PGDATA), pgtopo's markers. The volume is mounted where the
# official image declares its VOLUME, so PGDATA reads /var/lib/postgresql/data/data; inside the
# volume the layout is the one earlier pgtopo versions wrote, whose volumes therefore still serve.
VOLUME_DIR = gateway.PG_DATA_MOUNT
PGDATA = f"{VOLUME_DIR}/data"
# The start signal: start.sh starts PostgreSQL while it exists. Fencing, rejoin and a switchover
# remove it so that nothing restarts a node as it was.
READY_MARKER = f"{VOLUME_DIR}/pgtopo.ready"
# Written with the first start signal and never removed: this data directory once served.
RELEASED_MARKER = f"{VOLUME_DIR}/pgtopo.released"
# Written once the node's setup finished (init.sql and slots.sql ran, a replica streamed) and
# never removed: until then every `up` runs the rest of the setup again.
DONE_MARKER = f"{VOLUME_DIR}/pgtopo.done"
SOCKET_DIR = "/var/run/postgresql"
# pgtopo's own statements (roles, slots, subscriptions) never wait for a synchronous standby:
# during `up` the standbys that synchronous_standby_names names do not exist yet.
ADMIN_ENV = {"PGOPTIONS": "-c synchronous_commit=local"}


def node_of(container: Container) -> str:
    return str(container.labels.get(gateway.LABEL_NODE, container.name))


def fail(container: Container, step: str, message: str) -> OperationFailed:
    return OperationFailed(message.strip() or "failed", node=node_of(container), step=step,
                           logs=gateway.logs(container))


def run(container: Container, step: str, cmd: list[str], *, user: str = "postgres",
        environment: dict[str, str] | None = None) -> str:
    res = gateway.exec_in(container, cmd, user=user, environment=environment)
    if res.rc != 0:
        raise fail(container, step, _error_line(res.stderr or res.stdout) or f"exit code {res.rc}")
    return res.stdout


def _error_line(text: str) -> str:
    """The line that says what went wrong (psql ends with the caret under the error)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in lines:
        if "ERROR:" in ln or "FATAL:" in ln or "error:" in ln:
            return ln
    return lines[-1] if lines else ""


def psql(container: Container, query: str, *, db: str = "postgres", step: str = "query") -> str:
    """Run one query over the local socket as postgres (peer auth); unaligned, tuples only."""
    return run(container, step, ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", SOCKET_DIR,
                                 "-d", db, "-c", query], environment=ADMIN_ENV).strip()


def psql_file(container: Container, path: str, *, step: str, environment: dict[str, str] | None = None) -> str:
    return run(container, step, ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", SOCKET_DIR, "-d", "postgres",
                                 "-f", path], environment={**ADMIN_ENV, **(environment or {})})


def prepare(container: Container) -> None:
    """The volume belongs to root when new; hand it to postgres before initdb or a clone."""
    run(container, "prepare", ["sh", "-c", f"mkdir -p {SOCKET_DIR} && chown postgres:postgres "
                               f"{VOLUME_DIR} {SOCKET_DIR} && chmod 0600 {PASSFILE} && "
                               f"chown -R postgres:postgres {CONF_DIR}"], user="root")


def initdb(container: Container) -> None:
    run(container, "initdb", ["initdb", "-D", PGDATA, "-U", "postgres", "--locale=C.UTF-8", "--encoding=UTF8",
                              "--data-checksums", "--auth-local=peer", "--auth-host=scram-sha-256"])


def clone(container: Container, *, conninfo: str, slot: str) -> None:
    """pg_basebackup from the upstream (through the relay when it is in another region)."""
    run(container, "pg_basebackup", ["pg_basebackup", "-d", conninfo, "-D", PGDATA, "-S", slot, "-X", "stream",
                                     "-c", "fast", "--no-password"])
    run(container, "mark standby", ["sh", "-c", f"chmod 700 {PGDATA} && touch {PGDATA}/standby.signal"])


@dataclass(frozen=True)
class Markers:
    """What a node's volume says about it (read before its PostgreSQL starts, or after it stopped)."""

    ready: bool
    released: bool
    done: bool
    data: bool  # PGDATA holds a data directory (PG_VERSION)
    standby: bool  # ... that starts as a standby (standby.signal)


def markers(container: Container) -> Markers:
    """The markers on ``container``'s volume, whatever its state (created, running or stopped)."""
    def there(path: str) -> bool:
        return gateway.path_exists(container, path)

    return Markers(ready=there(READY_MARKER), released=there(RELEASED_MARKER), done=there(DONE_MARKER),
                   data=there(f"{PGDATA}/PG_VERSION"), standby=there(f"{PGDATA}/standby.signal"))


def release(container: Container) -> None:
    """Let the entrypoint start PostgreSQL on the data directory now in place."""
    run(container, "start postgres", ["touch", RELEASED_MARKER, READY_MARKER])


def mark_done(container: Container) -> None:
    """The node's setup finished: later runs of `up` leave it as it is."""
    run(container, "mark ready", ["touch", DONE_MARKER])


def wipe(container: Container) -> None:
    """Remove what a failed initdb or clone left on a volume that never served, before trying again."""
    run(container, "empty the volume", ["rm", "-rf", PGDATA, READY_MARKER, RELEASED_MARKER, DONE_MARKER], user="root")


def wait_accepting(container: Container, *, timeout: float = 90) -> None:
    wait_for(lambda: gateway.exec_in(container, ["pg_isready", "-q", "-h", SOCKET_DIR]).rc == 0, timeout=timeout,
             what="PostgreSQL to accept connections", step="wait for postgres", node=node_of(container),
             container=container)






def subscription_ready(c: Container, sub: str, *, db: str) -> bool:
    """Every table of subscription ``sub`` copied (its initial copy is over)."""
    query = ("SELECT count(*) FILTER (WHERE r.srsubstate <> 'r') || ' ' || count(*) FROM pg_subscription_rel r "
             + q(sql.SQL("JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = {}").format(
                 sql.Literal(sub))))
    out = psql(c, query, db=db, step=f"wait for {sub}").split()
    return len(out) == 2 and out[0] == "0" and out[1] != "0"


def wait_subscription_ready(c: Container, sub: str, *, db: str, timeout: float = 300) -> None:
    def ready() -> bool:
        return subscription_ready(c, sub, db=db)

    wait_for(ready, timeout=timeout, what=f"every table of {sub} to be ready", step=f"initial copy of {sub}",
             node=node_of(c), container=c)


def slot_state(publisher: Container, slot: str, *, step: str) -> str:
    """``slot`` on the publisher: 'active' (a walsender streams from it), 'inactive' or 'missing'."""
    query = q(sql.SQL("SELECT CASE WHEN active THEN 'active' ELSE 'inactive' END FROM pg_replication_slots "
                      "WHERE slot_name = {}").format(sql.Literal(slot)))
    return psql(publisher, query, step=step) or "missing"


def wait_slot_active(publisher: Container, slot: str, *, subscriber: Container, sub: str,
                     timeout: float = 300) -> None:
    """The apply worker of subscription ``sub`` (on ``subscriber``) is connected to the publisher
    and replicates from its slot (START_REPLICATION made the slot active)."""
    step = f"start of {sub}"
    seen = ["missing"]

    def active() -> bool:
        seen[0] = slot_state(publisher, slot, step=step)
        return seen[0] == "active"

    wait_for(active, timeout=timeout, step=step, node=node_of(subscriber), container=subscriber,
             what=f"the apply worker of {sub} to replicate from slot {slot} on {node_of(publisher)}",
             last_seen=lambda: f"slot {slot} on {node_of(publisher)}: {seen[0]}")
