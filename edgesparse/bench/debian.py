"""The host's Debian apt sources, read as text: which archive entries serve a suite, in the
one-line ``.list`` and the deb822 ``.sources`` formats. :mod:`edgesparse.bench.provision` points
a private apt-get at them to fetch an emulated target's packages.

Standard library only; reads files, starts nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

APT_SOURCES_DIRS = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
"""Where apt keeps the host's sources (a file and a folder)."""


def host_debian_sources(
    suite: str, *, arch: str, roots: tuple[Path, ...] = APT_SOURCES_DIRS
) -> str:
    """One-line ``deb [arch=...] URI SUITE COMPONENTS`` entries for every host apt source whose
    suite is ``suite`` or ``suite-*`` (bookworm, bookworm-updates, bookworm-security), read from
    both the one-line ``.list`` and the deb822 ``.sources`` formats."""
    files: list[Path] = []
    for root in roots:
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files += sorted(p for p in root.iterdir() if p.suffix in (".list", ".sources"))
    entries: list[tuple[str, str, str, str]] = []  # uri, suite, components, signed-by
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        if path.suffix == ".sources":
            entries += _deb822_entries(text)
        else:
            entries += _one_line_entries(text)
    lines = []
    for uri, s, components, signed in entries:
        if s == suite or s.startswith(f"{suite}-") or s.startswith(f"{suite}/"):
            opts = f"arch={arch}" + (f" signed-by={signed}" if signed else "")
            line = f"deb [{opts}] {uri} {s} {components}"
            if line not in lines:
                lines.append(line)
    return "".join(f"{line}\n" for line in lines)


def _one_line_entries(text: str) -> list[tuple[str, str, str, str]]:
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
        if not m:
            continue
        opts, uri, suite, components = m.groups()
        signed = re.search(r"signed-by=(\S+)", opts or "")
        out.append((uri, suite, components.strip() or "main", signed.group(1) if signed else ""))
    return out


def _deb822_entries(text: str) -> list[tuple[str, str, str, str]]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line  # continuation (e.g. an inline key block)
                continue
            key, sep, value = line.partition(":")
            if not sep:
                key = None
                continue
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        signed = fields.get("signed-by", "")
        signed = signed if signed and "\n" not in signed else ""  # inline keys: use the keyring
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                out.append((uri, suite, fields.get("components", "main"), signed))
    return out
