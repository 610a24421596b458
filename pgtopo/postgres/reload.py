"""Reload a running node's configuration, and find out what PostgreSQL refused.

A reload never fails: PostgreSQL keeps the old value of a setting it refuses, says why in its
log, and marks the entry in ``pg_file_settings``; it would refuse to start with that file. So
after ``pg_reload_conf()`` pgtopo waits for the reload to happen (``pg_conf_load_time`` moves),
then reads ``pg_file_settings`` and takes PostgreSQL's own words from the log.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from psycopg import sql

from pgtopo.model.render import q
from pgtopo.postgres import instance
from pgtopo.runtime import gateway
from pgtopo.runtime.waiting import poll, wait_for

if TYPE_CHECKING:  # only gateway.py imports docker at run time
    from docker.models.containers import Container

RELOAD_TIMEOUT = 30.0
# An entry a reload could not apply although its value is valid: it waits for a restart
# (pg_settings.pending_restart). Every other entry with an error was refused.
_REFUSED = ("SELECT coalesce(f.name, ''), coalesce(f.setting, ''), f.sourcefile, f.sourceline, f.error "
            "FROM pg_file_settings f LEFT JOIN pg_settings s ON s.name = f.name "
            "WHERE f.error IS NOT NULL AND NOT coalesce(s.pending_restart, false) ORDER BY f.seqno")
_PENDING = "SELECT string_agg(name, ', ' ORDER BY name) FROM pg_settings WHERE pending_restart"
_SEP = "\x1f"


@dataclass(frozen=True)
class Refused:
    """One entry of a configuration file that PostgreSQL refused."""

    name: str  # empty for a line PostgreSQL could not parse
    setting: str
    file: str
    line: int
    error: str  # pg_file_settings.error ("setting could not be applied", "syntax error"...)
    words: str = ""  # what PostgreSQL logged about it ("... is outside the valid range ...")

    def text(self) -> str:
        what = f"{self.name} = '{self.setting}'" if self.name else "a line"
        return f"{what} ({self.file} line {self.line}): {self.words or self.error}"


@dataclass(frozen=True)
class Reloaded:
    refused: tuple[Refused, ...]
    pending_restart: str  # settings that take effect at the next restart, comma-separated


_LOG_MESSAGE = re.compile(r"\b(?:LOG|WARNING|ERROR|FATAL|DETAIL|HINT):\s+(.*)$")


def words_in_log(log: str, name: str) -> str:
    """PostgreSQL's messages about setting ``name`` in ``log`` (its stderr), in order, without prefixes.

    ``shared_buffers = '1kB'`` gives ``0 8kB is outside the valid range for parameter
    "shared_buffers" (16 8kB .. 1073741823 8kB)``; a DETAIL or HINT line right after one is kept.
    """
    out: list[str] = []
    keep_next = False
    for line in log.splitlines():
        m = _LOG_MESSAGE.search(line)
        if m is None:
            keep_next = False
            continue
        msg = m.group(1).strip()
        about = f'"{name.lower()}"' in msg.lower()  # setting names are case-insensitive: "TimeZone"
        if about or (keep_next and line[m.start():].startswith(("DETAIL", "HINT"))):
            if msg not in out:
                out.append(msg)
            keep_next = True
        else:
            keep_next = False
    return "; ".join(out)


def parse_refused(rows: str) -> list[Refused]:
    """The rows of ``_REFUSED`` as psql prints them (unaligned, fields separated by ``_SEP``)."""
    out = []
    for row in rows.splitlines():
        fields = row.split(_SEP)
        if len(fields) != 5:
            continue
        name, setting, file, line, error = fields
        out.append(Refused(name=name, setting=setting, file=file, line=int(line) if line.isdigit() else 0,
                           error=error))
    return out


def reload(c: Container) -> Reloaded:
    """``pg_reload_conf()`` on ``c``, once it took effect: what was refused, what waits for a restart."""
    node = instance.node_of(c)
    before = instance.psql(c, "SELECT pg_conf_load_time()", step="reload configuration")
    since = int(time.time()) - 1  # Docker's log filter counts whole seconds
    instance.psql(c, "SELECT pg_reload_conf()", step="reload configuration")
    moved = q(sql.SQL("SELECT pg_conf_load_time() > {}::timestamptz").format(sql.Literal(before)))
    wait_for(lambda: instance.psql(c, moved, step="reload configuration") == "t", timeout=RELOAD_TIMEOUT,
             what="PostgreSQL to reload its configuration", step="reload configuration", node=node, container=c,
             interval=0.1)
    rows = instance.run(c, "check the configuration", [
        "psql", "-X", "-A", "-t", "-q", "-F", _SEP, "-h", instance.SOCKET_DIR, "-d", "postgres", "-c", _REFUSED],
        environment=instance.ADMIN_ENV)
    refused = parse_refused(rows)
    pending = instance.psql(c, _PENDING, step="check pending restart")
    if refused:
        # The postmaster logs why as it reloads; the log reaches Docker a moment later.
        def logged() -> str | None:
            text = gateway.logs(c, since=since, tail=200)
            return text if all(words_in_log(text, r.name) for r in refused if r.name) else None

        log = poll(logged, timeout=3, interval=0.2) or gateway.logs(c, since=since, tail=200)
        refused = [replace(r, words=words_in_log(log, r.name)) if r.name else r for r in refused]
    return Reloaded(refused=tuple(refused), pending_restart=pending)
