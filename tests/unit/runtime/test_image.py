from __future__ import annotations

from pathlib import Path

import pytest

from pgtopo.errors import InputError
from pgtopo.runtime import image


def test_build_command_uses_the_release_that_packages_the_version() -> None:
    cmd = image.build_command(version=17, out=Path("/tmp/x.tar"))
    assert cmd[0] == "mmdebstrap"
    assert any(arg.startswith("--include=postgresql-17,iproute2,python3,") for arg in cmd)
    assert cmd[-3:] == ["trixie", "/tmp/x.tar", image.MIRROR]
    assert image.build_command(version=15, out=Path("/tmp/x.tar"))[-3] == "bookworm"


def test_version_without_debian_package_is_refused() -> None:
    with pytest.raises(InputError) as exc:
        image.suite_for(16)
    assert exc.value.message.startswith("postgres.version: PostgreSQL 16 is not packaged by Debian")


def test_only_pgtopo_images_are_built() -> None:
    assert image.is_local_build("pgtopo/postgres:17")
    assert not image.is_local_build("postgres:17")


def test_the_recipe_changes_with_what_the_image_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    before = image.recipe(17)
    assert before == image.recipe(17)
    assert before != image.recipe(15)
    monkeypatch.setattr(image, "PACKAGES", (*image.PACKAGES, "pgbouncer"))
    assert image.recipe(17) != before


def test_the_ha_stack_is_in_the_image() -> None:
    cmd = " ".join(image.build_command(version=17, out=Path("/tmp/x.tar")))
    for package in ("patroni", "python3-etcd", "etcd-server", "etcd-client"):
        assert package in cmd
