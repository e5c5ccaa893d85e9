"""The C runtime's sources (``esb.h``, ``esb.c``, the driver ``esb_main.c`` and the files they
include), shipped as this package's data: ``edgesparse export-c`` copies them next to a model
and the bench builds them per target (:func:`edgesparse.export_c.c_runtime_dir`). Nothing here
is Python to import; the file makes the folder a package listed in pyproject.toml, so that
setuptools ships its data without warning that the folder is an unlisted importable package."""
