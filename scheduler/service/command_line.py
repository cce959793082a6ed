"""The command lines of the built-in management commands: their grammar, checked with no I/O.

A ``Command`` job's line is parsed when the job is written (a 400 with the usage when it
is wrong) and again when it runs; :mod:`scheduler.service.management` runs what this module
parses. File arguments (``ExportJobs --to``, ``ImportJobs --from``) are names inside the
command folder (:mod:`scheduler.service.command_folder`): relative, without ``..``, without
control characters. An export's name may carry ``{now}``, the run's time, so a daily
export never collides with yesterday's (exports never overwrite).

Secrets leave the store only through ``takt manage --include-secrets``, a flag of the CLI
run by an administrator: no command line accepts it, so no job can carry it.
"""

from __future__ import annotations

import argparse
import shlex
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath

import isodate

from scheduler.errors import ValidationFailed

__all__ = ["COMMAND_NAMES", "NOW_FIELD", "ParsedCommand", "parse_command_line"]

#: Replaced in an export's file name by the run's time (UTC, ``20261130T030000Z``).
NOW_FIELD = "{now}"
_MAX_NAME_CHARS = 255
_SECRETS_FLAG = "--include-secrets"


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    name: str
    args: argparse.Namespace


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValidationFailed(f"{message}\n{self.format_usage().strip()}", field="command")


def _duration(text: str) -> timedelta:
    try:
        value = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError, OverflowError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 duration") from exc
    try:
        if isinstance(value, isodate.Duration):
            value = value.totimedelta(start=datetime(2000, 1, 1))
        span = timedelta(seconds=float(value.total_seconds()))
    except (OverflowError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is too long a duration") from exc
    if span <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration")
    return span


def _folder_name(text: str) -> str:
    """A file name inside the command folder: relative, no ``..``, printable."""
    rule = "a relative name inside the command folder (no '/' at the start, no '..')"
    if not text or len(text) > _MAX_NAME_CHARS:
        raise argparse.ArgumentTypeError(f"{text!r} is not {rule}, of 1-{_MAX_NAME_CHARS} chars")
    if any(unicodedata.category(char).startswith("C") for char in text) or "\\" in text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {rule}: control characters and '\\' are refused"
        )
    path = PurePosixPath(text)
    if path.is_absolute() or ".." in path.parts or text.endswith("/") or path.name in ("", "."):
        raise argparse.ArgumentTypeError(f"{text!r} is not {rule}")
    return text


def _parser(name: str, *arguments: tuple[str, dict[str, object]]) -> _Parser:
    parser = _Parser(prog=name, add_help=False, allow_abbrev=False)
    for flag, options in arguments:
        parser.add_argument(flag, **options)  # type: ignore[arg-type]
    return parser


_OLDER_THAN = (
    "--older-than",
    {"type": _duration, "default": _duration("P60D"), "dest": "older_than", "metavar": "DURATION"},
)

_PARSERS: dict[str, _Parser] = {
    "PurgeHistory": _parser("PurgeHistory", _OLDER_THAN),
    "DeleteFinishedJobs": _parser("DeleteFinishedJobs", _OLDER_THAN),
    "ExportJobs": _parser(
        "ExportJobs",
        ("--collection", {"required": True, "metavar": "NAME"}),
        ("--to", {"required": True, "type": _folder_name, "metavar": "NAME"}),
    ),
    "ImportJobs": _parser(
        "ImportJobs",
        ("--from", {"required": True, "type": _folder_name, "dest": "source", "metavar": "NAME"}),
    ),
    "VerifyStore": _parser("VerifyStore"),
}

#: The built-in commands, by name.
COMMAND_NAMES = tuple(sorted(_PARSERS))


def parse_command_line(line: str) -> ParsedCommand:
    """The command and its arguments; a 400 with the usage when either is wrong."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ValidationFailed(f"command line {line!r}: {exc}", field="command") from exc
    if not words or words[0] not in _PARSERS:
        raise ValidationFailed(
            f"unknown command {words[0] if words else ''!r}; "
            f"the commands are {', '.join(COMMAND_NAMES)}",
            field="command",
        )
    if _SECRETS_FLAG in words:
        raise ValidationFailed(
            f"{_SECRETS_FLAG} is not part of a command line: only an administrator's "
            f"`takt manage {_SECRETS_FLAG} ...` exports secrets, never a job",
            field="command",
        )
    return ParsedCommand(words[0], _PARSERS[words[0]].parse_args(words[1:]))
