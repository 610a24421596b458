"""Node settings against the catalogues generated from pg_settings (pure).

The verdicts below were compared with PostgreSQL itself (`postgres -C` on a config holding the
setting) for 15.18, 16.15 and 17.12: they agree except where PostgreSQL runs a check hook
(max_connections 262143 exceeds MAX_BACKENDS with the other backends) or accepts an enum value
pg_settings does not list (synchronous_commit = 'true'), which pgtopo refuses.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from pgtopo.model import pgsettings
from pgtopo.model.topology import PostgresSpec

MEMORY = "B, kB, MB, GB, TB"
TIME = "us, ms, s, min, h, d"


def test_every_supported_version_has_a_catalogue() -> None:
    versions = typing.get_args(PostgresSpec.model_fields["version"].annotation)
    assert versions == (15, 16, 17)
    for v in versions:
        path = pgsettings.CATALOGUE_DIR / f"pg{v}.json"
        raw = json.loads(path.read_text())
        assert raw["major"] == v
        assert raw["generated_by"] == "scripts/settings_catalogue.py from pg_settings"
        cat = pgsettings.catalogue(v)
        assert cat is not None and len(cat) > 350
        assert cat["shared_buffers"].unit == "8kB" and cat["shared_buffers"].vartype == "integer"


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("work_mem", "16MB", None), ("work_mem", "1.5GB", None), ("work_mem", "0x100", None), ("temp_file_limit", "-1", None),
    ("work_mem", 64, None), ("work_mem", "64 kB ", None), ("work_mem", "1e3", None),
    ("work_mem", 63, "63 is outside the valid range for work_mem (64 .. 2147483647, in units of kB)"),
    ("work_mem", "lots", f"'lots' is not an integer with an optional unit ({MEMORY})"),
    ("work_mem", "64KB", f"'64KB': valid units for work_mem are {MEMORY}"),
    ("work_mem", "08", f"'08': valid units for work_mem are {MEMORY}"),
    ("work_mem", "3TB", "3TB is outside the valid range for work_mem (64 .. 2147483647, in units of kB)"),
    ("work_mem", "inf", f"'inf' is not an integer with an optional unit ({MEMORY})"),
    ("work_mem", "", f"'' is not an integer with an optional unit ({MEMORY})"),
    ("work_mem", "64MB\nshared_preload_libraries = 'x'",
     "the value holds a newline or another control character (postgresql.conf has one setting per line)"),
    ("shared_buffers", "1kB", "1kB is outside the valid range for shared_buffers (16 .. 1073741823, in units of 8kB)"),
    ("max_connections", 0, "0 is outside the valid range for max_connections (1 .. 262143)"),
    ("max_connections", "100.4", None), ("max_connections", "+5", None),
    ("random_page_cost", 1.1, None), ("random_page_cost", "nan", "'nan' is not a number"),
    ("random_page_cost", "4 ms", "'4 ms': random_page_cost takes no unit"),
    ("random_page_cost", "-1", "-1 is outside the valid range for random_page_cost (0 .. 1.79769e+308)"),
    ("vacuum_cost_delay", "0.5ms", None), ("vacuum_cost_delay", "5us", None),
    ("vacuum_cost_delay", "101ms", "101ms is outside the valid range for vacuum_cost_delay (0 .. 100, in units of ms)"),
    ("statement_timeout", "5 min", None), ("statement_timeout", "24d", None),
    ("statement_timeout", "5 sec", f"'5 sec': valid units for statement_timeout are {TIME}"),
    ("statement_timeout", "25d", "25d is outside the valid range for statement_timeout (0 .. 2147483647, in units of ms)"),
    ("checkpoint_timeout", "29500ms", None),
    ("checkpoint_timeout", "29s", "29s is outside the valid range for checkpoint_timeout (30 .. 86400, in units of s)"),
    ("synchronous_commit", "REMOTE_APPLY", None), ("synchronous_commit", True, None),
    ("synchronous_commit", "maybe", "'maybe' is not one of: local, remote_write, remote_apply, on, off"),
    ("ssl", "of", None), ("ssl", "y", None), ("ssl", 1, None), ("ssl", "TRUE", None),
    ("ssl", "o", "'o' is not a boolean (on, off, true, false, yes, no, 1, 0)"),
    ("ssl", 2, "'2' is not a boolean (on, off, true, false, yes, no, 1, 0)"),
    ("application_name", 5, None), ("pg_stat_statements.max", 1000, None),
    ("block_size", 8192, "'block_size' cannot be set: PostgreSQL fixes it when it is built or initialised"),
    ("shared_buffer", "1", "unknown setting 'shared_buffer' in PostgreSQL 17 (did you mean shared_buffers?)"),
    ("zzz", "red", "unknown setting 'zzz' in PostgreSQL 17"),
    ("bonjur", "red", "unknown setting 'bonjur' in PostgreSQL 17 (did you mean bonjour?)"),
])
def test_values_as_postgresql_reads_them(name: str, value: str | int | float | bool, expected: str | None) -> None:
    assert pgsettings.problem(name, value, version=17) == expected


def test_each_version_has_its_own_settings() -> None:
    assert pgsettings.problem("summarize_wal", "on", version=17) is None
    assert pgsettings.problem("summarize_wal", "on", version=16) == "unknown setting 'summarize_wal' in PostgreSQL 16"


def test_a_version_without_catalogue_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pgsettings, "CATALOGUE_DIR", tmp_path)
    pgsettings.catalogue.cache_clear()
    try:
        assert pgsettings.problem("work_mem", "4MB", version=16) == (
            "no settings catalogue for PostgreSQL 16 is shipped with pgtopo, so settings cannot be checked (generate "
            "one with scripts/settings_catalogue.py)")
    finally:
        pgsettings.catalogue.cache_clear()
