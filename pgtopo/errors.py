"""One error hierarchy, mapped to the documented exit codes in one place (``pgtopo.cli``)."""

from __future__ import annotations

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
    """The topology file has one or more problems, each ``path.to.field: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if problems else "invalid topology", details=problems[1:])
        self.problems = problems


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
