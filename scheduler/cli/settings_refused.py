"""The settings of a ``takt`` command, loaded so that a refused ``TAKT_*`` variable is a
usage error: one line and exit status 2, nothing tried.

The service commands (:mod:`scheduler.cli.main`) load :class:`~scheduler.settings.TaktSettings`,
the commands over the API (:mod:`scheduler.cli.resources`) the smaller
:class:`~scheduler.settings.ClientSettings`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from scheduler.errors import ConfigurationError
from scheduler.settings import ClientSettings, TaktSettings, load_client_settings, load_settings

__all__ = ["SettingsRefused", "client_settings", "service_settings"]

_Settings = TypeVar("_Settings")


class SettingsRefused(click.ClickException):
    """A ``TAKT_*`` variable that is unknown or has a bad value: one line, exit status 2,
    as click's usage errors (the command was called wrongly, nothing was tried)."""

    exit_code = 2


def service_settings() -> TaktSettings:
    """The settings of ``takt up``, ``api``, ``beat``, ``worker``, ``flower`` and ``manage``."""
    return _refusing(load_settings)


def client_settings() -> ClientSettings:
    """The settings of ``takt jobs``, ``collections`` and ``principals``."""
    return _refusing(load_client_settings)


def _refusing(load: Callable[[], _Settings]) -> _Settings:
    try:
        return load()
    except ConfigurationError as exc:
        raise SettingsRefused(str(exc)) from exc
