"""The rule import-linter cannot check: no module imports another module's ``_private`` names
(what two modules share is public in the lower one). The floors themselves are checked by
``lint-imports`` (pyproject.toml ``[tool.importlinter]``), which scripts/test.sh runs."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgesparse"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def private_imports(root: Path = PACKAGE) -> list[str]:
    """``path:line: module imports _name from other`` for every cross-module private import."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _imported_from(node, module, path.name == "__init__.py")
            if not source.startswith("edgesparse") or source == module:
                continue
            for alias in node.names:
                name = alias.name
                if name.startswith("_") and not name.startswith("__"):
                    found.append(
                        f"{path.relative_to(root.parent)}:{node.lineno}: {name} of {source}"
                    )
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    assert private_imports() == []


def test_the_check_sees_a_private_import(tmp_path: Path) -> None:
    # The checker itself must be able to fail: a package with one such import is reported.
    pkg = tmp_path / "edgesparse"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from ..low import _hidden, public\n")
    (pkg / "low.py").write_text("_hidden = public = 1\n")
    assert private_imports(pkg) == ["edgesparse/sub/__init__.py:1: _hidden of edgesparse.low"]
