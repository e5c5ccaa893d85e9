"""Print pip constraints that pin every dependency of pyproject.toml to its lowest allowed version.

``python scripts/lowest_constraints.py [--check] [EXTRA ...]`` reads ``[project] dependencies``
and the named optional extras (default: ``dev``) and prints one ``name==version`` line for each
requirement that applies on this interpreter and platform: its ``>=`` (or ``==``, ``~=``) lower
bound. scripts/test-lowest.sh installs with these, so CI runs the suite against the oldest
versions we claim to support; the bounds live in pyproject.toml only. ``--check`` instead
compares them with what is installed and exits 1 on any difference.

Needs ``packaging`` (pytest depends on it, so any test venv has it) and Python 3.11+ or tomli.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def lower_bound(req: Requirement) -> str | None:
    """The lowest version ``req`` allows, or None when it names no lower bound."""
    for spec in req.specifier:
        if spec.operator in ("==", "===", ">=", "~=") and "*" not in spec.version:
            return spec.version
    return None


def constraints(pyproject: dict, extras: list[str]) -> list[str]:
    project = pyproject["project"]
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs += project.get("optional-dependencies", {})[extra]
    pins: dict[str, str] = {}
    for text in reqs:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # e.g. tomli on Python >= 3.11, atheris off x86_64 Linux
        version = lower_bound(req)
        if version is None:
            continue
        name = canonicalize_name(req.name)
        if name in pins and pins[name] != version:
            # The same package in two lists with different floors: the higher one wins.
            version = max(pins[name], version, key=Version)
        pins[name] = version
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def check(pins: list[str]) -> int:
    """Print pinned vs installed versions; 1 if any differs (a constraint did not hold)."""
    bad = 0
    for pin in pins:
        name, version = pin.split("==")
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        same = installed != "not installed" and Version(installed) == Version(version)
        bad += not same
        print(f"{name:<18} {version:<10} {installed}{'' if same else '   <- differs'}")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    do_check = "--check" in argv
    extras = [a for a in argv if a != "--check"] or ["dev"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = constraints(pyproject, extras)
    if do_check:
        return check(pins)
    sys.stdout.write("".join(line + "\n" for line in pins))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
