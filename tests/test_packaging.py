"""What the wheel ships: every package, every file read at run time, the device profiles from
the top-level devices/ (their only copy). scripts/wheel-check.sh builds and runs the real wheel;
these are the quick checks of the configuration it is built from."""

from __future__ import annotations

import sys
from fnmatch import fnmatch
from pathlib import Path

from edgesparse.bench import targets as T

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _source_dir(package: str) -> Path:
    mapped = SETUPTOOLS.get("package-dir", {})
    return ROOT / mapped.get(package, package.replace(".", "/"))


def test_every_package_is_listed() -> None:
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "edgesparse").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert set(SETUPTOOLS["packages"]) == found | {"edgesparse.devices"}


def test_device_profiles_come_from_the_top_level_folder() -> None:
    assert SETUPTOOLS["package-dir"] == {"edgesparse.devices": "devices"}
    assert not (ROOT / "edgesparse" / "devices").exists()  # one copy, no second one
    assert T.devices_dir().resolve() == (ROOT / "devices").resolve()


def test_every_data_file_is_package_data() -> None:
    data = SETUPTOOLS["package-data"]
    shipped: list[Path] = []
    for package in SETUPTOOLS["packages"]:
        folder = _source_dir(package)
        # Files of this package (subfolders that are packages themselves are checked there).
        for path in folder.rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc"):
                continue
            owner = path.parent
            while owner != folder and not (owner / "__init__.py").exists():
                owner = owner.parent
            if owner != folder:
                continue
            rel = path.relative_to(folder).as_posix()
            globs = data.get(package, [])
            assert any(fnmatch(rel, g) for g in globs), f"{path} is not in the wheel"
            shipped.append(path)
    names = {p.name for p in shipped}
    assert {"host.toml", "rpi4.toml", "esb.c", "esb.h", "esb_main.c"} <= names


def test_every_c_source_is_listed_where_sources_are_shipped() -> None:
    """A driver file the lists miss would be left out of export-c, of the sources staged on a
    board that builds the bench driver, and of scripts/wheel-check.sh's wheel check."""
    from edgesparse.bench.engine_c import C_SOURCES
    from edgesparse.export_c import RUNTIME_FILES

    folder = ROOT / "edgesparse" / "runtime" / "c"
    on_disk = {p.name for p in folder.iterdir() if p.suffix in (".c", ".h")}
    assert set(RUNTIME_FILES) == on_disk
    assert set(C_SOURCES) == on_disk
    wheel_check = (ROOT / "scripts" / "wheel-check.sh").read_text()
    assert all(f'"{name}"' in wheel_check for name in on_disk)
