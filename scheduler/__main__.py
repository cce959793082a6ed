"""``python -m scheduler`` is the ``takt`` command."""

from scheduler.cli.main import main

main()
