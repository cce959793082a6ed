"""``python -m scheduler`` is the ``takt`` command."""

from scheduler.cli import main

main()
