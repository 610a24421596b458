"""Reading the files a topology names: regular files of a sane size, never blocking (pure I/O).

A FIFO would block ``open`` forever, ``/dev/zero`` would fill the memory, and a symlink loop
looks like a missing file to ``Path.exists``. Every refusal is a ``FileRefused`` with a message
fit for the user.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from pgtopo.errors import InputError

MAX_BYTES = 10 * 1024 * 1024  # a topology or schema file larger than this is a mistake
SCHEMA_PATH_ENV = "PGTOPO_SCHEMA_PATH"  # more directories the user allows schema files in

_KINDS = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]


class FileRefused(InputError):
    """A file pgtopo will not read; ``message`` says why (callers put the path in front)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def read_text(path: Path, *, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes, or FileRefused."""
    try:
        st = os.stat(path)  # follows symlinks; a loop is ELOOP, not "no such file"
    except OSError as exc:
        raise _refusal(exc) from None
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(f"is {_kind(st.st_mode)}, not a regular file")
    if st.st_size > limit:
        raise FileRefused(f"is {_mib(st.st_size)}; at most {_mib(limit)} is read")
    try:
        # O_NONBLOCK: should the file have become a FIFO since the stat, open does not wait.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise _refusal(exc) from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise FileRefused(f"is {_kind(os.fstat(fh.fileno()).st_mode)}, not a regular file")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise FileRefused(f"is larger than {_mib(limit)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"not a UTF-8 text file (byte {exc.start})") from None


def _refusal(exc: OSError) -> FileRefused:
    if exc.errno == errno.ENOENT:
        return FileRefused("no such file", missing=True)
    if exc.errno == errno.ELOOP:
        return FileRefused("too many levels of symbolic links (a symlink loop)")
    return FileRefused(f"cannot read it ({exc.strerror or exc})")


def allowed_roots(topo_path: Path) -> list[Path]:
    """Where schema files may be: beside the topology file, plus the user's PGTOPO_SCHEMA_PATH.

    A topology file is shared and copied around: it must not make pgtopo read /etc/hostname or
    a home directory into a container. The opt-in is the user's environment, never the file.
    """
    roots = [topo_path.parent]
    roots += [Path(p) for p in os.environ.get(SCHEMA_PATH_ENV, "").split(os.pathsep) if p]
    return [Path(os.path.realpath(r)) for r in roots]


def schema_path(topo_path: Path, name: str) -> Path:
    """``name`` resolved against the topology file's directory, or FileRefused if it is outside
    every allowed directory (absolute, ``..`` or a symlink that leads out)."""
    if not name.strip():
        raise FileRefused("an empty path")
    if "\x00" in name:
        raise FileRefused("a path cannot hold a NUL character")
    full = topo_path.parent / name
    real = Path(os.path.realpath(full))
    if not any(real == root or root in real.parents for root in allowed_roots(topo_path)):
        how = "an absolute path" if Path(name).is_absolute() else f"it resolves to {real}"
        raise FileRefused(f"{how}, outside the topology file's directory: a topology file reads schemas only beside "
                          f"itself (allow more directories with {SCHEMA_PATH_ENV})")
    return full
