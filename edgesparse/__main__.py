"""``python -m edgesparse``: the same CLI as the ``edgesparse`` command."""

from edgesparse.cli import main

main()
