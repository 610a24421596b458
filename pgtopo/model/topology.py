"""The topology file's model: pydantic classes (unknown keys refused, types, name syntax)
and the derived views every other module uses (nodes, clusters, links, relay ports, endpoints).

``pgtopo.model.loader`` reads a file into this model, then ``pgtopo.model.rules`` checks how the
parts refer to each other; every problem of both passes is reported at once as
``path.to.field: message``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pgtopo.errors import InputError
from pgtopo.model.rowfilter import row_filter_problem

DEFAULT_IMAGE = "pgtopo/postgres:{version}"
PG_PORT = 5432
Pair = tuple[str, str]  # two region names
RELAY_ALIAS = "pgtopo-relay"  # the relay's network alias on every region network
RELAY_NODE = "relay"  # the relay container's name (after the topology's) and its pgtopo.node label
PROBE_SCHEMA = "pgtopo"  # pgtopo's schema in every database: the probe table of `verify`
PROBE_PUBLICATION = "pgtopo_probe"
# The physical slot a failover's candidate holds the WAL of its re-pointed replicas with, from
# before its promotion until their own slots are copied from it (``pgtopo.ha.promotion``).
HOLD_SLOT = "pgtopo_failover_hold"
# Names that pgtopo gives its own things, with what takes them: the file cannot use them.
RESERVED_NODE_NAMES = {RELAY_NODE: "the relay container's name", RELAY_ALIAS: "the relay's network alias"}
RESERVED_DATABASES = frozenset({"postgres", "template0", "template1"})
RELAY_PORT_BASE = 20000
RELAY_PORT_SPAN = 40000
# Mesh listeners (one relay port per Patroni or etcd member and service, the same address from
# every region): below the range of the (region, node) listeners, so the two never collide.
MESH_PORT_BASE = 10000
MESH_PORT_SPAN = 10000
PATRONI_SERVICES = (PG_PORT, 8008)  # PostgreSQL and Patroni's REST API
ETCD_SERVICES = (2379, 2380)  # etcd's client and peer ports
MAX_NODES = 99
DEFAULT_DCS_MEMBERS = 3  # etcd members when `dcs:` is not given: a majority survives one loss

NAME_PATTERN = r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$"  # topologies, clusters and nodes
NodeName = Annotated[
    str,
    StringConstraints(pattern=NAME_PATTERN),
]
RegionName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$"),
]
_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_$]*$")
_SETTING_RE = re.compile(r"^[a-z_][a-z0-9_.]*$")
# Settings pgtopo owns: overriding them per node would break replication or the runtime.
RESERVED_SETTINGS = frozenset(
    {
        "port",
        "listen_addresses",
        "hba_file",
        "config_file",
        "data_directory",
        "cluster_name",
        "primary_conninfo",
        "primary_slot_name",
        "synchronous_standby_names",
        "synchronized_standby_slots",
        "wal_level",
        "password_encryption",
        # Replication and rejoin depend on these; include directives would bypass every check.
        "sync_replication_slots",
        "hot_standby",
        "hot_standby_feedback",
        "wal_log_hints",
        "full_page_writes",
        "max_wal_senders",
        "max_replication_slots",
        "recovery_target_timeline",
        # A replica with a recovery target stops following its upstream (or promotes itself).
        "recovery_target",
        "recovery_target_action",
        "recovery_target_inclusive",
        "recovery_target_lsn",
        "recovery_target_name",
        "recovery_target_time",
        "recovery_target_xid",
        # pgtopo runs psql as postgres over the socket in /var/run/postgresql.
        "unix_socket_directories",
        "unix_socket_permissions",
        # pgtopo writes on the primaries (init.sql, slots, subscriptions, verify's probe rows) and
        # `verify` and lag in time read commit timestamps.
        "default_transaction_read_only",
        "track_commit_timestamp",
        "include",
        "include_dir",
        "include_if_exists",
    }
)


def check_topology_name(name: str) -> str:
    """A topology name given on the command line (``down --name``), checked as the file's ``name`` is."""
    if not re.match(NAME_PATTERN, name):
        raise InputError(f"--name: '{name}' is not a topology name (lower-case letters, digits and '-', "
                         "1 to 40 characters)")
    return name


def _check_identifier(value: str) -> str:
    if len(value.encode()) > 63:
        raise ValueError(f"'{value}' is longer than 63 bytes")
    if not _IDENT_RE.match(value):
        raise ValueError(
            f"'{value}' is not a plain PostgreSQL identifier (lower-case letters, digits, _ and $, "
            "not starting with a digit)"
        )
    return value


PgIdent = Annotated[str, AfterValidator(_check_identifier)]
# Strict numbers: YAML's `true` is not 1, and a number is not silently a boolean. A float field
# still takes an integer (rtt_ms: 80).
StrictNumber = Annotated[float, Strict()]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Derived views are ``cached_property``s: computed once per (frozen) instance and kept in the
    # instance's __dict__ beside the fields. pydantic ignores them for validation, model_dump,
    # equality and the JSON schema, but model_copy copies __dict__ whole: drop them there, or a
    # copy with ``update`` would answer from the original's fields.
    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copied = super().model_copy(update=update, deep=deep)
        for name in [k for k in copied.__dict__ if k not in type(self).model_fields]:
            del copied.__dict__[name]
        return copied


class Region(_Model):
    """A region: one Docker network. ``subnet`` is chosen automatically when not given."""

    subnet: str | None = None
    description: str | None = None

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"'{value}' is not a network address in CIDR form ({exc})") from None
        if net.version != 4 or net.prefixlen > 28:
            raise ValueError(f"'{value}' must be an IPv4 network of at least 16 addresses (/28)")
        return value


class Link(_Model):
    """Latency between two regions: round-trip time and optional jitter, in milliseconds."""

    between: tuple[RegionName, RegionName]
    rtt_ms: StrictNumber = Field(ge=0, le=10_000)
    jitter_ms: StrictNumber = Field(default=0, ge=0, le=10_000)
    bandwidth_kbps: StrictInt | None = Field(default=None, gt=0)


class Database(_Model):
    """A database and its schema: inline SQL or a file relative to the topology file."""

    schema_sql: str | None = Field(default=None, alias="schema")
    schema_file: str | None = None

    @model_validator(mode="after")
    def _one_schema(self) -> Database:
        if self.schema_sql is not None and self.schema_file is not None:
            raise ValueError("give either schema or schema_file, not both")
        return self


class Node(_Model):
    """A PostgreSQL server. The primary has no ``upstream``; every replica names one."""

    region: RegionName
    role: Literal["primary", "replica"] = "replica"
    upstream: NodeName | None = None
    failover_priority: StrictInt = Field(default=100, ge=0, le=1000)
    port: StrictInt | None = Field(default=None, ge=1024, le=65535)
    settings: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("settings")
    @classmethod
    def _settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not _SETTING_RE.match(key):
                raise ValueError(f"'{key}' is not a PostgreSQL setting name")
            if key in RESERVED_SETTINGS:
                raise ValueError(f"'{key}' is set by pgtopo and cannot be overridden")
        return value


class Synchronous(_Model):
    """``synchronous_standby_names`` of a cluster: ``ANY n (...)`` or ``FIRST n (...)``."""

    method: Literal["any", "first"] = "any"
    count: StrictInt = Field(default=1, ge=1)
    standbys: list[NodeName] = Field(min_length=1)


class PublishedTable(_Model):
    name: str
    where: str | None = None
    columns: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_identifier(value)

    @field_validator("where")
    @classmethod
    def _where(cls, value: str | None) -> str | None:
        if value is not None:
            problem = row_filter_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("a column list cannot be empty")
            for col in value:
                _check_identifier(col)
        return value


class Publication(_Model):
    database: str
    tables: list[PublishedTable] | None = None
    all_tables: StrictBool = False

    @field_validator("tables", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        # `tables: [products]` is short for `tables: [{name: products}]`.
        if isinstance(value, list):
            return [{"name": t} if isinstance(t, str) else t for t in value]
        return value

    @field_validator("database")
    @classmethod
    def _db(cls, value: str) -> str:
        return _check_identifier(value)

    @model_validator(mode="after")
    def _tables_or_all(self) -> Publication:
        if self.all_tables and self.tables:
            raise ValueError("give either tables or all_tables: true, not both")
        if not self.all_tables and not self.tables:
            raise ValueError("list tables, or set all_tables: true")
        return self

    def table_list(self) -> list[PublishedTable]:
        return list(self.tables or [])


class Subscription(_Model):
    """A subscription on this cluster's primary to a publication of another cluster."""

    publisher: str
    publication: str
    database: str | None = None
    copy_data: StrictBool = True
    failover: StrictBool | None = None

    @field_validator("publication")
    @classmethod
    def _pub(cls, value: str) -> str:
        return _check_identifier(value)

    @field_validator("database")
    @classmethod
    def _db(cls, value: str | None) -> str | None:
        return None if value is None else _check_identifier(value)


# Patroni's documented minimums: below them Patroni silently uses the minimum instead.
PATRONI_MINIMUMS = {"ttl": 20, "loop_wait": 1, "retry_timeout": 3}


class PatroniSpec(_Model):
    """The few Patroni knobs that decide how fast and how safely a cluster fails over, with
    Patroni's own defaults (seconds; ``maximum_lag_on_failover`` in bytes)."""

    ttl: StrictInt = 30
    loop_wait: StrictInt = 10
    retry_timeout: StrictInt = 10
    maximum_lag_on_failover: StrictInt = Field(default=1_048_576, ge=0)

    @field_validator("ttl", "loop_wait", "retry_timeout")
    @classmethod
    def _minimum(cls, value: int, info: ValidationInfo) -> int:
        least = PATRONI_MINIMUMS[str(info.field_name)]
        if value < least:
            raise ValueError(f"{value} is below Patroni's minimum of {least} s (Patroni would silently use {least})")
        return value

    @model_validator(mode="after")
    def _safe_timing(self) -> PatroniSpec:
        total = self.loop_wait + 2 * self.retry_timeout
        if total > self.ttl:
            raise ValueError(
                f"loop_wait + 2 * retry_timeout = {self.loop_wait} + 2 * {self.retry_timeout} = {total} s is more than "
                f"ttl = {self.ttl} s, which Patroni documents as unsafe: a leader retrying etcd that long keeps "
                "running after its lock expired, while another node may be promoted"
            )
        return self


class Cluster(_Model):
    nodes: dict[NodeName, Node] = Field(min_length=1)
    databases: dict[PgIdent, Database] = Field(default_factory=dict)
    synchronous: Synchronous | None = None
    publications: dict[PgIdent, Publication] = Field(default_factory=dict)
    subscriptions: dict[PgIdent, Subscription] = Field(default_factory=dict)
    # Who keeps the cluster alive: a person typing `pgtopo failover`, or Patroni with etcd.
    ha: Literal["manual", "patroni"] = "manual"
    patroni: PatroniSpec | None = None

    @property
    def patroni_spec(self) -> PatroniSpec:
        """The Patroni knobs in force (Patroni's defaults when the file sets none)."""
        return self.patroni or PatroniSpec()

    @cached_property
    def primary_name(self) -> str:
        return next(n for n, node in self.nodes.items() if node.role == "primary")


class PostgresSpec(_Model):
    version: Literal[15, 16, 17] = 17
    image: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _strict_version(cls, value: Any) -> Any:
        # A Literal cannot be strict in pydantic: 17.0 would pass as 17.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected 15, 16 or 17, not {value!r}")
        return value


class Dcs(_Model):
    """The etcd cluster that Patroni clusters keep their leader lock in: one member per entry of
    ``regions``, in that region (a region listed twice holds two members)."""

    regions: list[RegionName] = Field(min_length=1)


@dataclass(frozen=True)
class DcsMember:
    name: str
    region: str


class Topology(_Model):
    """The whole file."""

    name: NodeName
    postgres: PostgresSpec = Field(default_factory=PostgresSpec)
    regions: dict[RegionName, Region] = Field(min_length=1)
    latency: list[Link] = Field(default_factory=list)
    clusters: dict[NodeName, Cluster] = Field(min_length=1)
    dcs: Dcs | None = None

    # -- derived views used by every other module -------------------------------------------
    # Each is computed once per instance (the model is frozen): status and verify ask for nodes,
    # links and relay ports thousands of times on a large topology. Lists are handed out as
    # fresh copies so that no caller can change the cached view.

    @property
    def image(self) -> str:
        return self.postgres.image or DEFAULT_IMAGE.format(version=self.postgres.version)

    @cached_property
    def _nodes(self) -> tuple[tuple[str, str, Node], ...]:
        return tuple((c, n, node) for c, cl in self.clusters.items() for n, node in cl.nodes.items())

    @cached_property
    def _node_index(self) -> dict[str, tuple[str, Node]]:
        out: dict[str, tuple[str, Node]] = {}
        for c, n, node in self._nodes:
            out.setdefault(n, (c, node))  # a name twice (refused by the rules) answers the first
        return out

    @cached_property
    def _links(self) -> dict[frozenset[str], Link]:
        out: dict[frozenset[str], Link] = {}
        for link in self.latency:
            out.setdefault(frozenset(link.between), link)  # the first one wins, as the old scan did
        return out

    def all_nodes(self) -> list[tuple[str, str, Node]]:
        """(cluster, node name, node) in file order."""
        return list(self._nodes)

    def node(self, name: str) -> Node:
        found = self._node_index.get(name)
        if found is None:
            raise InputError(f"unknown node '{name}' (known: {', '.join(self.node_names())})")
        return found[1]

    def node_names(self) -> list[str]:
        return [n for _c, n, _node in self._nodes]

    def cluster_of(self, node_name: str) -> str:
        found = self._node_index.get(node_name)
        if found is None:
            raise InputError(f"unknown node '{node_name}'")
        return found[0]

    def link(self, a: str, b: str) -> Link | None:
        if a == b:
            return None
        return self._links.get(frozenset((a, b)))

    @cached_property
    def _region_pairs(self) -> tuple[Pair, ...]:
        regions = list(self.regions)
        return tuple((a, b) for i, a in enumerate(regions) for b in regions[i + 1:])

    def region_pairs(self) -> list[Pair]:
        """Every pair of distinct regions, in file order."""
        return list(self._region_pairs)

    def rtt_ms(self, a: str, b: str) -> float:
        link = self.link(a, b)
        return link.rtt_ms if link else 0.0

    def relay_port(self, src_region: str, target: str) -> int:
        """The relay's listening port for traffic from ``src_region`` to node ``target``."""
        return self._relay_ports[(src_region, target)]

    @cached_property
    def _relay_ports(self) -> dict[tuple[str, str], int]:
        # Computed once per (frozen) topology: resolving a relay port back to its node asks for
        # every pair, and a failover does so for every node it looks at.
        # Derived from the names, not their order in the file: adding a region or a node must not
        # renumber the ports that running replicas and subscriptions already use. A collision
        # of two hashes (rare) goes to the next free port, in the order of the names.
        keys = [(r, n) for r in self.regions for n in self.node_names()]
        return _hashed_ports(keys, lambda k: f"{k[0]}|{k[1]}", base=RELAY_PORT_BASE, span=RELAY_PORT_SPAN)

    @cached_property
    def _relay_keys(self) -> dict[int, tuple[str, str]]:
        return {port: key for key, port in self._relay_ports.items()}

    def relay_key(self, port: int) -> tuple[str, str] | None:
        """(source region, target node) of a relay port: the inverse of ``relay_port``."""
        return self._relay_keys.get(port)

    def mesh_members(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """(member, region, services) of everything reached through the mesh: the nodes of
        ``ha: patroni`` clusters and the etcd members."""
        out: list[tuple[str, str, tuple[int, ...]]] = [
            (n, spec.region, PATRONI_SERVICES) for c, n, spec in self.all_nodes() if self.clusters[c].ha == "patroni"]
        return out + [(m.name, m.region, ETCD_SERVICES) for m in self.dcs_members()]

    def mesh_port(self, member: str, service: int) -> int:
        """The relay's mesh port for ``member``'s ``service`` port (KeyError for anything else)."""
        return self._mesh_ports[(member, service)]

    @cached_property
    def _mesh_ports(self) -> dict[tuple[str, int], int]:
        # As for relay ports: derived from the names, so members added later renumber nothing.
        keys = [(m, svc) for m, _r, services in self.mesh_members() for svc in services]
        return _hashed_ports(keys, lambda k: f"mesh|{k[0]}|{k[1]}", base=MESH_PORT_BASE, span=MESH_PORT_SPAN)

    def uses_relay(self) -> bool:
        return len(self.regions) > 1

    def patroni_clusters(self) -> list[str]:
        return [c for c, cl in self.clusters.items() if cl.ha == "patroni"]

    def dcs_members(self) -> list[DcsMember]:
        """The etcd members: as ``dcs:`` places them, else (when a cluster is ``ha: patroni``) one
        in each of the first three regions, going round the regions when there are fewer."""
        if self.dcs is not None:
            regions = list(self.dcs.regions)
        elif self.patroni_clusters():
            names = list(self.regions)
            regions = [names[i % len(names)] for i in range(DEFAULT_DCS_MEMBERS)]
        else:
            return []
        out: list[DcsMember] = []
        for region in regions:
            n = sum(1 for m in out if m.region == region) + 1
            out.append(DcsMember(name=f"etcd-{region}" + (f"-{n}" if n > 1 else ""), region=region))
        return out


def slot_name(node_name: str) -> str:
    """The physical slot a node streams from: its name with hyphens as underscores."""
    return node_name.replace("-", "_")


@dataclass(frozen=True)
class Endpoint:
    """Where a process in ``from_region`` reaches ``node`` inside the topology's networks."""

    host: str
    port: int


def endpoint(topo: Topology, *, from_region: str, node: str) -> Endpoint:
    """Same region: the node's own name on the region network; else the relay's listener."""
    if topo.node(node).region == from_region:
        return Endpoint(host=node, port=PG_PORT)
    return Endpoint(host=RELAY_ALIAS, port=topo.relay_port(from_region, node))


_Key = TypeVar("_Key", tuple[str, str], tuple[str, int])


def _hashed_ports(keys: list[_Key], text: Callable[[_Key], str], *, base: int, span: int) -> dict[_Key, int]:
    """A port in [base, base + span) per key, from a hash of its text (in sorted key order, a
    collision takes the next free port): adding keys later renumbers none of the others."""
    out: dict[_Key, int] = {}
    used: set[int] = set()
    for key in sorted(keys):
        digest = hashlib.sha256(text(key).encode()).digest()
        port = base + int.from_bytes(digest[:4], "big") % span
        while port in used:
            port = base + (port - base + 1) % span
        used.add(port)
        out[key] = port
    return out
