"""What a topology file's text parsed to, kept between commands: the same text is not parsed again.

libyaml parses and ruamel.yaml builds the data in Python: 9 ms for a 30-node file, paid by every
command before it can do anything (a failover's outage starts counting there). The data is kept
as JSON under the SHA-256 of the parser's version and the text, and only when JSON gives it back
unchanged (no timestamps, sets, non-string keys nor NaN: those files are parsed every time).
Only a valid file's data is kept (``loader.load``: a refused file leaves nothing behind), and the
loader checks what it reads back as it checks any parsed file (shape, model, rules): an entry
decides nothing. Entries are private (0600, in a 0700 directory); the newest ``KEEP`` stay.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import __version__ as _PARSER

KEEP = 32


def _key(text: str) -> str:
    return hashlib.sha256(f"ruamel.yaml {_PARSER}\0{text}".encode()).hexdigest()


def get(directory: Path, text: str) -> Any:
    """The data ``text`` parsed to before, or None (not kept, or unreadable)."""
    try:
        return json.loads((directory / f"{_key(text)}.json").read_text())
    except (OSError, ValueError):
        return None


def put(directory: Path, text: str, data: Any) -> None:
    """Keep what ``text`` parsed to, when JSON represents it exactly (best effort: a cache that
    cannot be written is no error)."""
    try:
        encoded = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError):
        return
    if json.loads(encoded) != data or not _same_types(json.loads(encoded), data):
        return  # an integer key, say, comes back a string
    with contextlib.suppress(OSError):
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".entry.")  # mode 0600
        with os.fdopen(fd, "w") as fh:
            fh.write(encoded)
        os.replace(tmp, directory / f"{_key(text)}.json")
        _prune(directory)


def _same_types(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (``1 == 1.0 == True`` in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return all(_same_types(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    return True


def _prune(directory: Path) -> None:
    entries = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in entries[KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink()
