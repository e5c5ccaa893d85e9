"""Device profiles for ``edgesparse bench`` (the ``*.toml`` files here: data, no code).

This folder is the profiles' only copy. The build installs it as ``edgesparse.devices``
(``package-dir`` in pyproject.toml), so an installed edgesparse reads the profiles with
:mod:`importlib.resources` (see :func:`edgesparse.bench.targets.devices_dir`).
"""
