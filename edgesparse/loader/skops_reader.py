"""``.skops`` files: audited against the allow-list, then loaded by skops."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from typing import Any

import numpy as np

from edgesparse.errors import (
    ModelFileError,
    ToolMissingError,
)
from edgesparse.loader.accounting import (
    ATOMS,
    audit_objects,
    children_of,
    guarded,
    zip_guarded,
)
from edgesparse.loader.allowlist import (
    RENAMED,
    SGD_FAST_LOSSES,
    SKOPS_ALLOWED_TYPES,
    ZIP_MAGIC,
    refused_error,
)
from edgesparse.loader.unpickler import (
    SKLEARN_VERSION_ATTRIBUTE,
    OldSGDLoss,
    hide_version_warning,
    record_version,
    written_by_release,
)


# -- skops -----------------------------------------------------------------------------------
def _schema_types(node: Any, out: set[str]) -> None:
    # Every node in a skops schema is a dict with __class__ and __module__; collect them all,
    # including the types skops trusts by default (it trusts every sklearn estimator).
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            cls, mod = item.get("__class__"), item.get("__module__")
            if cls is not None or mod is not None:
                out.add(f"{mod}.{cls}")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def load_skops(data: bytes, source: str, max_unpacked: int) -> Any:
    try:
        import skops.io as sio
    except ImportError as exc:
        raise ToolMissingError(
            f"cannot load {source}: reading .skops files needs skops (pip install skops)"
        ) from exc
    if not data.startswith(ZIP_MAGIC):
        raise ModelFileError(
            f"cannot load {source}: not a skops file (a .skops file is a zip archive); "
            "save the model with skops.io.dump"
        )
    fix = "save the model again with skops.io.dump"
    zip_guarded(source, "skops", fix, data, max_unpacked)

    def audit() -> None:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            schema = json.loads(zf.read("schema.json"))
        types: set[str] = set()
        _schema_types(schema, types)
        refused = sorted(t for t in types if t not in SKOPS_ALLOWED_TYPES)
        if refused:
            root = (
                f"{schema.get('__module__')}.{schema.get('__class__')}"
                if isinstance(schema, dict)
                else None
            )
            raise refused_error(source, refused, skops=True, root=root)

    guarded(source, "skops", fix, audit)
    # Old loss objects are rewritten as data before skops sees them (see _skops_as_data); then
    # trust exactly the types skops flags, all of which are on our list.
    readable = guarded(source, "skops", fix, _skops_as_data, data)
    untrusted = guarded(source, "skops", fix, lambda: sio.get_untrusted_types(data=readable))
    refused = sorted(t for t in untrusted if t not in SKOPS_ALLOWED_TYPES)
    if refused:
        raise refused_error(source, refused, skops=True)
    with warnings.catch_warnings():
        hide_version_warning()
        obj = guarded(source, "skops", fix, sio.loads, readable, untrusted)
    # What skops built is checked as a pickle's is: cycles, nesting, sparse consistency, and
    # arrays counted once per use (skops shares an object written once and referenced again).
    audit_objects(obj, source)
    _record_skops_version(obj, data)
    return obj


def _skops_as_data(data: bytes) -> bytes:
    """The skops file with its SGD loss objects made readable without their classes.

    ``sklearn.linear_model._sgd_fast`` losses (``Log`` is gone from today's scikit-learn)
    become a string naming the class, as the pickle loader's stand-in does; ``_loss.Cy*`` (the
    module name scikit-learn 1.6-1.8 builds gave those classes) is renamed to its real home.
    Decided by module and name only; nothing is imported.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    schema = json.loads(members["schema.json"])
    changed = False
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        key = (node.get("__module__"), node.get("__class__"))
        if key[0] == "sklearn.linear_model._sgd_fast" and key[1] in SGD_FAST_LOSSES:
            text = repr(OldSGDLoss(str(key[1])))
            node.clear()
            node.update(
                __class__="str",
                __module__="builtins",
                __loader__="JsonNode",
                content=json.dumps(text),
                is_json=True,
                __id__=id(text),
            )
            changed = True
            continue
        if key in RENAMED:
            node["__module__"] = RENAMED[key][0]  # type: ignore[index]
            changed = True
        stack.extend(node.values())
    if not changed:
        return data
    members["schema.json"] = json.dumps(schema).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return out.getvalue()


def _record_skops_version(root: Any, data: bytes) -> None:
    """Put the version a skops file records for its top object back on every scikit-learn
    estimator in it (one file is written by one release), as the pickle loader does."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        schema = json.loads(zf.read("schema.json"))
    version: str | None = None
    content = schema.get("content") if isinstance(schema, dict) else None
    state = content.get("content") if isinstance(content, dict) else None
    node = state.get(SKLEARN_VERSION_ATTRIBUTE) if isinstance(state, dict) else None
    if isinstance(node, dict) and isinstance(node.get("content"), str):
        try:
            version = written_by_release({SKLEARN_VERSION_ATTRIBUTE: json.loads(node["content"])})
        except ValueError:
            version = "<not a version>"
    elif isinstance(state, dict):
        version = "pre-0.18"
    if version is None:
        return
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (np.ndarray, *ATOMS)):
            continue
        seen.add(id(obj))
        record_version(obj, version)
        children = children_of(obj)
        if children:
            stack.extend(children)
