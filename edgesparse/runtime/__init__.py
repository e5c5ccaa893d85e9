"""On-device runtime (numpy + standard library only). Placeholder until the runtime lands."""

from __future__ import annotations


class Model:  # pragma: no cover - replaced shortly
    """Placeholder."""


def load(path):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Placeholder."""
    raise NotImplementedError
