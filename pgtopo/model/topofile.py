"""Edit a topology file in place, keeping its comments, order and layout (ruamel round trip).

Commands that change a running topology also record the change in the file, so that a later
``up`` (which skips what already exists by name) neither undoes nor duplicates it. Edits are
made on a round-trip document, re-validated with ``topology.load`` and written atomically.
"""

from __future__ import annotations

import difflib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString
from ruamel.yaml.tokens import CommentToken

from pgtopo.errors import InputError, OperationFailed, first_line
from pgtopo.model import loader
from pgtopo.model.topology import PublishedTable, Topology

# (mapping indent, sequence indent, dash offset). The first one that reproduces the file
# byte for byte wins; ruamel's own guess misreads "  - item" under a key as a 4-space file.
_INDENTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (3, 5, 2))


class Document:
    """A topology file loaded for round-trip editing; ``text()`` dumps it again."""

    def __init__(self, text: str, *, source: str = "topology file") -> None:
        self.original = text
        best: tuple[int, YAML, CommentedMap] | None = None
        for mapping, sequence, offset in _INDENTS:
            yaml = _yaml(mapping, sequence, offset)
            try:
                data = yaml.load(text)
            except YAMLError as exc:
                raise InputError(f"{source}: YAML error: {first_line(exc)}") from None
            if not isinstance(data, CommentedMap):
                raise InputError(f"{source}: the top level must be a mapping")
            changed = _changed_lines(text, _dump(yaml, data))
            if best is None or changed < best[0]:
                best = (changed, yaml, data)
            if changed == 0:
                break
        assert best is not None
        self._yaml = best[1]
        self.data = best[2]

    def text(self) -> str:
        return _dump(self._yaml, self.data)

    def cluster(self, name: str) -> CommentedMap:
        clusters = self.data.get("clusters")
        found = clusters.get(name) if isinstance(clusters, CommentedMap) else None
        if not isinstance(found, CommentedMap):
            raise InputError(f"the file has no cluster '{name}'")
        return found


def _yaml(mapping: int, sequence: int, offset: int) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line of the user's
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _dump(yaml: YAML, data: Any) -> str:
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


def _changed_lines(a: str, b: str) -> int:
    diff = difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
    return sum(1 for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---"))


# -- comments that follow a block ----------------------------------------------------------------
# ruamel attaches a comment (or blank line) that introduces the NEXT key to the deepest last
# value before it. Appending to a mapping would then put that comment above the new entry
# instead of above the key it describes: move it along, after the new last value.

def _deepest_last(node: Any) -> tuple[Any, Any, Any] | None:
    """(container, key or index, value) of the last scalar a block collection ends with."""
    while isinstance(node, CommentedMap | CommentedSeq) and len(node) and not node.fa.flow_style():
        key = list(node)[-1] if isinstance(node, CommentedMap) else len(node) - 1
        value = node[key]
        if isinstance(value, CommentedMap | CommentedSeq) and len(value) and not value.fa.flow_style():
            node = value
            continue
        return node, key, value
    return None


def _post_slot(container: Any) -> int:
    return 2 if isinstance(container, CommentedMap) else 0


def _detach_tail(node: Any) -> str:
    """Remove and return the comment lines that follow ``node``'s block (its own line kept)."""
    found = _deepest_last(node)
    if found is None:
        return ""
    container, key, value = found
    entry = container.ca.items.get(key)
    slot = _post_slot(container)
    if not entry or entry[slot] is None:
        return ""
    token = entry[slot]
    text = str(token.value)
    if isinstance(value, LiteralScalarString | FoldedScalarString):
        keep, tail = "", text  # a block scalar consumed its own line end
    else:
        cut = text.find("\n") + 1
        keep, tail = text[:cut], text[cut:]
    if keep:
        token.value = keep
    else:
        entry[slot] = None
    return tail


def _attach_tail(node: Any, tail: str) -> None:
    if not tail:
        return
    found = _deepest_last(node)
    if found is None:
        return
    container, key, value = found
    slot = _post_slot(container)
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    own = entry[slot].value if entry[slot] is not None else ("" if isinstance(value, LiteralScalarString | FoldedScalarString)
                                                              else "\n")
    entry[slot] = CommentToken(own + tail, CommentMark(0), None)


@contextmanager
def _keeping_tail(node: CommentedMap) -> Iterator[None]:
    tail = _detach_tail(node)
    try:
        yield
    finally:
        _attach_tail(node, tail)


def _block_map(parent: CommentedMap, key: str) -> CommentedMap:
    """``parent[key]`` as a block mapping, created (or turned from ``{}`` / empty) when needed."""
    value = parent.get(key)
    if not isinstance(value, CommentedMap):
        value = CommentedMap()
        parent[key] = value
    if value.fa.flow_style():
        value.fa.set_block_style()
    return value


def _insert_before(parent: CommentedMap, key: str, value: Any, *, before: str) -> None:
    if before in parent:
        parent.insert(list(parent).index(before), key, value)
    else:
        parent[key] = value


def _table_entry(table: PublishedTable) -> str | CommentedMap:
    if table.where is None and table.columns is None:
        return table.name
    entry = CommentedMap([("name", table.name)])
    if table.where is not None:
        entry["where"] = table.where
    if table.columns is not None:
        cols = CommentedSeq(table.columns)
        cols.fa.set_flow_style()
        entry["columns"] = cols
    return entry


def _tables_seq(tables: list[PublishedTable]) -> CommentedSeq:
    seq = CommentedSeq([_table_entry(t) for t in tables])
    if all(isinstance(e, str) for e in seq):
        seq.fa.set_flow_style()  # as the file's examples write them: tables: [orders]
    return seq


# -- edits -----------------------------------------------------------------------------------------

def add_publication(doc: Document, *, cluster: str, name: str, database: str, tables: list[PublishedTable]) -> None:
    """``clusters.<cluster>.publications.<name>`` (the publications map is created if needed)."""
    cl = doc.cluster(cluster)
    with _keeping_tail(cl):
        if "publications" not in cl:
            _insert_before(cl, "publications", CommentedMap(), before="subscriptions")
        pubs = _block_map(cl, "publications")
        if name in pubs:
            raise InputError(f"cluster '{cluster}' already has a publication '{name}' in the file")
        pubs[name] = CommentedMap([("database", database), ("tables", _tables_seq(tables))])


def add_publication_tables(doc: Document, *, cluster: str, publication: str, tables: list[PublishedTable]) -> None:
    """Append tables to an existing publication's list."""
    cl = doc.cluster(cluster)
    pub = cl.get("publications", {}).get(publication)
    if not isinstance(pub, CommentedMap) or not isinstance(pub.get("tables"), CommentedSeq):
        raise InputError(f"cluster '{cluster}' has no publication '{publication}' with a table list in the file")
    seq: CommentedSeq = pub["tables"]
    with _keeping_tail(cl):
        for table in tables:
            entry = _table_entry(table)
            if not isinstance(entry, str) and seq.fa.flow_style():
                seq.fa.set_block_style()  # a table with a filter reads better one per line
            seq.append(entry)


def add_subscription(doc: Document, *, cluster: str, name: str, publisher: str, publication: str,
                     database: str | None = None, copy_data: bool = True, failover: bool | None = None) -> None:
    """``clusters.<cluster>.subscriptions.<name>``, written like the file's own examples."""
    cl = doc.cluster(cluster)
    with _keeping_tail(cl):
        subs = _block_map(cl, "subscriptions")
        if name in subs:
            raise InputError(f"cluster '{cluster}' already has a subscription '{name}' in the file")
        entry = CommentedMap([("publisher", publisher), ("publication", publication)])
        if database is not None:
            entry["database"] = database
        entry["copy_data"] = copy_data
        if failover is not None:
            entry["failover"] = failover
        subs[name] = entry


def append_schema(doc: Document, *, cluster: str, database: str, ddl: str) -> None:
    """Append DDL to a database's inline ``schema`` (created as a ``|`` block when absent)."""
    cl = doc.cluster(cluster)
    dbs = cl.get("databases")
    if not isinstance(dbs, CommentedMap) or database not in dbs:
        raise InputError(f"cluster '{cluster}' has no database '{database}' in the file")
    with _keeping_tail(cl):
        db = _block_map(dbs, database)
        if "schema_file" in db:
            raise InputError(
                f"database '{database}' of cluster '{cluster}' takes its schema from {db['schema_file']}: "
                "add the table there first"
            )
        old = db.get("schema")
        text = "" if old is None else str(old)
        if text and not text.endswith("\n"):
            text += "\n"
        db["schema"] = LiteralScalarString(text + ddl.rstrip("\n") + "\n")


def remove_subscription(doc: Document, *, cluster: str, name: str) -> None:
    """Remove ``clusters.<cluster>.subscriptions.<name>`` (and an emptied ``subscriptions``)."""
    cl = doc.cluster(cluster)
    subs = cl.get("subscriptions")
    if not isinstance(subs, CommentedMap) or name not in subs:
        raise InputError(f"cluster '{cluster}' has no subscription '{name}' in the file")
    with _keeping_tail(cl):
        del subs[name]
        if not subs:
            del cl["subscriptions"]


# -- diff, validation, writing ---------------------------------------------------------------------

def unified_diff(old: str, new: str, *, path: Path) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"{path}", tofile=f"{path} (edited)"))


def _temp_beside(path: Path, text: str) -> Path:
    # Beside the file, not in /tmp: schema_file paths are relative to the topology file, and
    # os.replace is only atomic within one file system.
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".pgtopo-edit")
    except OSError as exc:
        raise OperationFailed(f"cannot write beside {path} ({exc.strerror})", step="write file") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return Path(name)


def validate_text(path: Path, text: str) -> Topology:
    """Validate edited text as if it were ``path`` (ValidationFailed lists every problem)."""
    tmp = _temp_beside(path, text)
    try:
        return loader.load(tmp)
    finally:
        tmp.unlink(missing_ok=True)


def _unchanged(path: Path, original: str) -> None:
    if path.read_text() != original:
        raise OperationFailed(f"{path} changed while pgtopo was working on it; not overwritten", step="write file")


@contextmanager
def staged(path: Path, *, original: str, text: str) -> Iterator[Callable[[], Topology]]:
    """Everything of replacing ``path`` with ``text`` that can fail, done before a live change.

    On entry ``text`` is validated and written beside ``path``, and ``path`` is checked writable
    and still holding ``original``; the ``commit()`` yielded replaces ``path`` (an atomic rename,
    after checking once more that nobody edited it meanwhile). Not committed, nothing is written.
    So a command that changes the topology and then the file stages the file first: when the
    file cannot be written, the topology is not changed either.
    """
    tmp = _temp_beside(path, text)
    try:
        topo = loader.load(tmp)
        _unchanged(path, original)
        if not os.access(path, os.W_OK):
            raise OperationFailed(f"{path} is read-only; not changed", step="write file")
        os.chmod(tmp, path.stat().st_mode & 0o7777)

        def commit() -> Topology:
            _unchanged(path, original)
            os.replace(tmp, path)
            return topo

        yield commit
    finally:
        tmp.unlink(missing_ok=True)


def write(path: Path, *, original: str, text: str) -> Topology:
    """Validate ``text`` and atomically replace ``path`` with it, if ``path`` still holds ``original``."""
    with staged(path, original=original, text=text) as commit:
        return commit()
