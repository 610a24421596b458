"""`pgtopo status` and `pgtopo verify`: bad input exits 2 before anything is contacted; sizes as typed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app
from pgtopo.cli.observe import _parse_size
from pgtopo.errors import InputError
from tests.support.topologies import GLOBAL_SAAS


@pytest.mark.parametrize(("args", "message"), [
    (["status", str(GLOBAL_SAAS), "3"], "error: SECONDS is the refresh interval of --watch: give --watch too"),
    (["status", str(GLOBAL_SAAS), "--watch", "0"], "error: the refresh interval must be positive (got 0)"),
    (["verify", str(GLOBAL_SAAS), "--max-retained", "lots"],
     "error: --max-retained: 'lots' is not a size (examples: 64MiB, 1GB, 1048576)"),
    (["verify", str(GLOBAL_SAAS), "--timeout", "0"], "error: --timeout must be a positive number of seconds (got 0)"),
])
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert res.output.strip() == message


@pytest.mark.parametrize(("text", "size"), [("64MiB", 64 << 20), ("1GB", 1 << 30), ("1048576", 1 << 20),
                                            ("16 kB", 16 << 10), ("0", 0)])
def test_parse_size(text: str, size: int) -> None:
    assert _parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1MB", "5TB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InputError, match="--max-retained"):
        _parse_size(text)
