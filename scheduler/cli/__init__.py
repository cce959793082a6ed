"""The ``takt`` command line: every ``takt`` command, and the supervisor of ``takt up``.

Three things are called commands in Takt; two of them live here:

- :mod:`scheduler.cli.main`: the ``takt`` group and the service commands (``up``, ``api``,
  ``beat``, ``worker``, ``flower``, and ``manage``); :mod:`~scheduler.cli.supervisor`,
  :mod:`~scheduler.cli.supervision`, :mod:`~scheduler.cli.embedded` and
  :mod:`~scheduler.cli.preflight` are ``takt up``'s parts, :mod:`~scheduler.cli.flower`
  the login of the Flower that ``takt up`` and ``takt flower`` run.
- :mod:`scheduler.cli.resources`: the commands over the API (``jobs``, ``collections``,
  ``principals``), with the client.
- The built-in management commands (``PurgeHistory``, ``ExportJobs`` ...) that ``Command``
  jobs and ``takt manage`` run are the service's: :mod:`scheduler.service.management`.

Both kinds of ``takt`` command load their settings through
:mod:`scheduler.cli.settings_refused` (a refused ``TAKT_*`` variable is exit status 2).
"""
