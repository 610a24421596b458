"""Build the PostgreSQL image with no registry: Debian packages by mmdebstrap, docker import."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pgtopo.errors import InputError, OperationFailed
from pgtopo.runtime import gateway

MIRROR = "http://deb.debian.org/debian"
# The Debian release that ships each PostgreSQL major version as `postgresql-N`.
SUITES = {15: "bookworm", 17: "trixie"}


def suite_for(version: int) -> str:
    if version not in SUITES:
        raise InputError(
            f"postgres.version: PostgreSQL {version} is not packaged by Debian "
            f"({', '.join(f'{v} in {s}' for v, s in SUITES.items())}); set postgres.image to an image you have, "
            f"e.g. postgres:{version} from a registry"
        )
    return SUITES[version]


# What the image holds besides PostgreSQL: ip (partitions), python3 (the relay), and the HA
# stack `ha: patroni` clusters run: Patroni with its etcd v3 client, the etcd server and etcdctl.
PACKAGES = ("iproute2", "python3", "patroni", "python3-etcd", "etcd-server", "etcd-client")
RECIPE_LABEL = "pgtopo.image-recipe"


def recipe(version: int) -> str:
    """A digest of what the image is built from: an image with another recipe is out of date."""
    return hashlib.sha256(" ".join(build_command(version=version, out=Path("-"))).encode()).hexdigest()[:16]


def build_command(*, version: int, out: Path) -> list[str]:
    hook = (
        'mkdir -p "$1/etc/postgresql-common/createcluster.d" && '
        'echo "create_main_cluster = false" > "$1/etc/postgresql-common/createcluster.d/00-pgtopo.conf"'
    )
    return [
        "mmdebstrap", "--variant=minbase", f"--include={','.join((f'postgresql-{version}', *PACKAGES))}",
        "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*", f"--essential-hook={hook}",
        suite_for(version), str(out), MIRROR,
    ]


def is_local_build(image: str) -> bool:
    """pgtopo builds its own images; anything else (postgres:17) is pulled from a registry."""
    return image.startswith("pgtopo/postgres:")


def up_to_date(image: str, *, version: int) -> bool:
    """The image exists and, when pgtopo builds it, was built from today's recipe."""
    if not gateway.image_exists(image):
        return False
    return not is_local_build(image) or gateway.image_labels(image).get(RECIPE_LABEL) == recipe(version)


def ensure(image: str, *, version: int, progress: Callable[[str], None]) -> bool:
    """Make sure ``image`` exists (pgtopo's own: built from today's recipe); returns True when
    it had to be built or pulled."""
    if up_to_date(image, version=version):
        return False
    if is_local_build(image):
        if gateway.image_exists(image):
            progress(f"{image} was built from an older recipe: rebuilding")
        build(image, version=version, progress=progress)
    else:
        progress(f"pulling {image}")
        gateway.pull_image(image)
    return True


def build(image: str, *, version: int, progress: Callable[[str], None]) -> None:
    if shutil.which("mmdebstrap") is None:
        raise OperationFailed(
            "mmdebstrap is not installed", step="build image",
            hint="install it with: sudo apt-get install -y mmdebstrap",
        )
    suite = suite_for(version)
    repository, _, tag = image.partition(":")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pgtopo-image-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        progress(f"mmdebstrap: Debian {suite} with postgresql-{version} (about a minute)")
        proc = subprocess.Popen(build_command(version=version, out=tar), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail[-14:], line.rstrip()]
            if line.startswith("I: "):
                progress(line[3:].strip())
        if proc.wait() != 0:
            raise OperationFailed("mmdebstrap failed", step="build image", logs="\n".join(tail))
        progress(f"docker import {image}")
        gateway.import_image(
            str(tar), repository=repository, tag=tag or "latest",
            changes=[f"ENV PATH=/usr/lib/postgresql/{version}/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     f"LABEL {RECIPE_LABEL}={recipe(version)}"],
        )
    progress(f"built {image} in {time.monotonic() - started:.0f} s")
