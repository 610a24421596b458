"""One error hierarchy, mapped to the documented exit codes in one place (``pgtopo.cli``)."""

from __future__ import annotations

import re
from collections import Counter

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNEXPECTED = 3
EXIT_INTERRUPTED = 130


def first_line(exc: BaseException) -> str:
    """The first line of an error's text (libpq and Docker messages run over several), or its
    class name when it has no text: what pgtopo shows of an error it did not raise itself."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


class PgtopoError(Exception):
    """Base class of every error pgtopo reports to the user without a traceback."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def lines(self) -> list[str]:
        return [self.message, *self.details]


class InputError(PgtopoError):
    """Bad input or usage: the topology file, an argument, a name. Nothing was changed."""

    exit_code = EXIT_BAD_INPUT


class ValidationFailed(InputError):
    """The topology file has one or more problems, each ``path.to.field: message``.

    ``problems`` holds every one; ``shown`` (what is printed) keeps the first few of each kind
    and says how many more there are, so 300 regions do not print 45,000 lines.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        self.shown = summarise(problems)
        super().__init__(self.shown[0] if self.shown else "invalid topology", details=self.shown[1:])


SHOWN_PER_KIND = 10
_VARYING = re.compile(r"'[^']*'|\b[0-9]+\b")


def _kind(problem: str) -> str:
    """A problem with its names and numbers blanked, and only the last field of its path."""
    path, _sep, message = problem.partition(": ")
    return _VARYING.sub("#", path.rsplit(".", 1)[-1] + ": " + message)


def summarise(problems: list[str], *, limit: int = SHOWN_PER_KIND) -> list[str]:
    """The first ``limit`` problems of each kind, in order; then one line per kind with the rest."""
    kinds = [_kind(p) for p in problems]
    total = Counter(kinds)
    seen: dict[str, int] = {}
    out: list[str] = []
    for problem, kind in zip(problems, kinds, strict=True):
        seen[kind] = seen.get(kind, 0) + 1
        if seen[kind] <= limit:
            out.append(problem)
        elif seen[kind] == limit + 1:
            out.append(f"... and {total[kind] - limit} more like: {problem}")
    return out


class OperationFailed(PgtopoError):
    """An operation failed halfway: names the node and the step, carries the container's logs."""

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        step: str | None = None,
        logs: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = " ".join(p for p in (f"node {node}" if node else "", f"step '{step}'" if step else "") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.node = node
        self.step = step
        self.logs = logs
        self.hint = hint

    def lines(self) -> list[str]:
        out = [self.message]
        if self.logs:
            out.append(f"last log lines of {self.node or 'the container'}:")
            out.extend("  " + line for line in self.logs.rstrip().splitlines())
        if self.hint:
            out.append(self.hint)
        return out


class Interrupted(PgtopoError):
    """Ctrl-C: the command stopped. Its lines say what was done, what was not, and the command that
    finishes the work."""

    exit_code = EXIT_INTERRUPTED


class DockerUnavailable(PgtopoError):
    """The Docker daemon cannot be reached."""
