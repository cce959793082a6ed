"""The console's job form: HTML form fields to job properties (wire form) and back.

The console posts plain ``application/x-www-form-urlencoded`` forms; :class:`FormData`
reads them without a multipart dependency. Everything here is pure: the routes hand the
result to the same :class:`~scheduler.service.jobs.JobService` as the API, which applies
every rule.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.domain.bounds import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    check_timestamp,
    nested_deeper_than,
)
from scheduler.domain.models import WeekDay
from scheduler.errors import ValidationFailed

__all__ = [
    "ACTION_TYPES",
    "FREQUENCIES",
    "FormData",
    "diff_patch",
    "form_values",
    "job_from_json",
    "properties_from_form",
    "schedule_from_form",
]

#: The form's action kinds; "Http" stands for both Http and Https (the URI decides).
ACTION_TYPES = ("Http", "StorageQueue", "Celery", "Command")
FREQUENCIES = ("Second", "Minute", "Hour", "Day", "Week", "Month", "Year", "Cron")
_LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")


@dataclass(frozen=True, slots=True)
class FormData:
    """The fields of an urlencoded form body (every value a string, repeats kept)."""

    fields: Mapping[str, list[str]]

    @classmethod
    def parse(cls, body: bytes) -> FormData:
        try:
            text = body.decode()
        except UnicodeDecodeError as exc:
            raise ValidationFailed("the form is not UTF-8") from exc
        return cls(parse_qs(text, keep_blank_values=True))

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[-1].strip() if values else default

    def raw(self, name: str) -> str:
        """The value as typed (not stripped): bodies and messages keep their spaces."""
        values = self.fields.get(name)
        return values[-1] if values else ""

    def getall(self, name: str) -> list[str]:
        return [value.strip() for value in self.fields.get(name, [])]


# -- schedule ------------------------------------------------------------------------------


def _zone(name: str) -> tzinfo:
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(
            f"timeZone: {name!r} is not an IANA time zone (for example Europe/Berlin)",
            field="timeZone",
        ) from exc


def _local_time(text: str, zone: tzinfo, field: str) -> datetime | None:
    if not text:
        return None
    for layout in _LOCAL_FORMATS:
        try:
            moment = datetime.strptime(text, layout)
        except ValueError:
            continue
        return _in_range(moment, zone, field)
    raise ValidationFailed(
        f"{field}: {text!r} is not a date and time (YYYY-MM-DD HH:MM)", field=field
    )


def _in_range(moment: datetime, zone: tzinfo, field: str) -> datetime:
    """A wall time of the form in ``zone``, within the range every write path accepts."""
    # Years far outside the range are refused before any arithmetic with the zone,
    # which could overflow next to datetime's own limits.
    try:
        if not EARLIEST_TIMESTAMP.year - 1 <= moment.year <= LATEST_TIMESTAMP.year:
            raise ValueError(f"{moment:%Y-%m-%d %H:%M} is out of range")
        return check_timestamp(moment.replace(tzinfo=zone))
    except (ValueError, OverflowError) as exc:
        raise ValidationFailed(
            f"{field}: {exc} (from 1970-01-01 to before 9000-01-01)", field=field
        ) from exc


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _numbers(form: FormData, name: str, low: int, high: int) -> list[int] | None:
    text = form.get(name).replace(";", ",")
    if not text:
        return None
    numbers = []
    for word in filter(None, (part.strip() for part in text.split(","))):
        try:
            value = int(word)
        except ValueError:
            raise ValidationFailed(
                f"{name}: {word!r} is not a whole number; list them with commas (1, 15, -1)",
                field=name,
            ) from None
        if not low <= value <= high:
            raise ValidationFailed(f"{name}: {value} is out of range {low}..{high}", field=name)
        numbers.append(value)
    return sorted(set(numbers)) or None


def _occurrences(form: FormData) -> list[dict[str, Any]] | None:
    text = form.get("monthlyOccurrences").replace(";", ",")
    found = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        words = item.split()
        try:
            number, day = (int(words[0]), WeekDay(words[1])) if len(words) == 2 else (0, None)
        except ValueError:
            number, day = 0, None
        if day is None or number not in (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5):
            raise ValidationFailed(
                f"monthlyOccurrences: {item!r} is not 'N Weekday' with N in 1..5 or -1..-5 "
                "(for example '1 Monday, -1 Friday')",
                field="monthlyOccurrences",
            )
        found.append({"day": day.value, "Occurrence": number})
    return found or None


def _recurrence(form: FormData, zone_name: str, zone: tzinfo) -> dict[str, Any]:
    frequency = form.get("frequency", "Day")
    recurrence: dict[str, Any] = {}
    if frequency == "Cron":
        recurrence["cron"] = form.get("cron")
    else:
        recurrence["frequency"] = frequency
        interval = _numbers(form, "interval", 1, 1000)
        recurrence["interval"] = interval[0] if interval else 1
        schedule = {
            "weekDays": form.getall("weekDays") or None,
            "hours": _numbers(form, "hours", 0, 23),
            "minutes": _numbers(form, "minutes", 0, 59),
            "monthDays": _numbers(form, "monthDays", -31, 31),
            "monthlyOccurrences": _occurrences(form),
            "months": _numbers(form, "months", 1, 12),
        }
        if frequency != "Week":
            schedule["weekDays"] = None  # Azure knows week days for weekly rules only
        if schedule := {key: value for key, value in schedule.items() if value}:
            recurrence["schedule"] = schedule
    if zone is not UTC:
        recurrence["timeZone"] = zone_name
    end_kind = form.get("endKind", "never")
    if end_kind == "count":
        count = _numbers(form, "count", 1, 1_000_000)
        if count is None:
            raise ValidationFailed("count: how many times? (a whole number)", field="count")
        recurrence["count"] = count[0]
    elif end_kind == "endTime":
        end = _local_time(form.get("endTime"), zone, "endTime")
        if end is None:
            raise ValidationFailed("endTime: until when? (YYYY-MM-DD HH:MM)", field="endTime")
        recurrence["endTime"] = _iso(end.astimezone(UTC))
    return recurrence


def schedule_from_form(form: FormData) -> dict[str, Any]:
    """``startTime`` and ``recurrence`` (wire form; absent ones left out) of the form.

    The start and end times are read in the form's time zone; a zone other than UTC
    becomes ``recurrence.timeZone``, so the rule follows that zone's wall clock.
    """
    zone_name = form.get("timeZone", "UTC") or "UTC"
    zone = _zone(zone_name)
    out: dict[str, Any] = {}
    start = _local_time(form.get("startTime"), zone, "startTime")
    if start is not None:
        out["startTime"] = _iso(start.astimezone(UTC)) if zone is UTC else start.isoformat()
    if form.get("scheduleKind", "once") == "recurring":
        out["recurrence"] = _recurrence(form, zone_name, zone)
    return out


# -- action --------------------------------------------------------------------------------


def _headers(text: str) -> dict[str, str] | None:
    headers = {}
    for line in filter(None, (line.strip() for line in text.splitlines())):
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise ValidationFailed(
                f"headers: {line!r} is not 'Name: value' (one header a line)", field="headers"
            )
        headers[name.strip()] = value.strip()
    return headers or None


def _json_value(form: FormData, name: str, kind: type) -> Any:
    text = form.get(name)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValidationFailed(f"{name}: not JSON ({exc})", field=name) from exc
    if not isinstance(value, kind):
        raise ValidationFailed(f"{name}: must be a JSON {kind.__name__}", field=name)
    return value


def _payload(form: FormData, kind: str) -> dict[str, Any]:
    if kind in ("Http", "Https"):
        return {
            "request": {
                "method": form.get("method", "GET") or "GET",
                "uri": form.get("uri"),
                "headers": _headers(form.raw("headers")),
                "body": form.raw("body") or None,
            }
        }
    if kind == "StorageQueue":
        message = {
            "storageAccount": form.get("storageAccount"),
            "queueName": form.get("queueName"),
            "message": form.raw("message"),
        }
        if token := form.get("sasToken"):  # left blank: the stored token stays
            message["sasToken"] = token
        return {"queueMessage": message}
    if kind == "Celery":
        return {
            "celeryTask": {
                "name": form.get("celeryTask"),
                "args": _json_value(form, "celeryArgs", list),
                "kwargs": _json_value(form, "celeryKwargs", dict),
                "queue": form.get("celeryQueue") or None,
            }
        }
    if kind == "Command":
        return {"command": form.get("command")}
    raise ValidationFailed(
        f"actionType: {kind!r} is not one of {', '.join(ACTION_TYPES)}", field="actionType"
    )


def _retry(form: FormData) -> dict[str, Any]:
    if form.get("retryType", "None") != "Fixed":
        return {"retryType": "None"}
    count = _numbers(form, "retryCount", 0, 20)
    return {
        "retryType": "Fixed",
        "retryCount": count[0] if count else 3,
        "retryInterval": form.get("retryInterval") or "PT30S",
    }


def _merged(old: Any, new: Any) -> Any:
    """``new`` over ``old``: dicts member by member, None drops a member, else replaced."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    out = copy.deepcopy(old)
    for key, value in new.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merged(out.get(key), value)
    return out


def _action(form: FormData, existing: Mapping[str, Any] | None) -> dict[str, Any]:
    kind = form.get("actionType", "Http")
    if kind in ("Http", "Https"):
        kind = "Https" if form.get("uri").lower().startswith("https://") else "Http"
    fresh: dict[str, Any] = {"type": kind, **_payload(form, kind), "retryPolicy": _retry(form)}
    if existing is not None and existing.get("type") == kind:
        # Keep what the form does not show (authentication, timeouts, secrets left blank).
        fresh = _merged(dict(existing), fresh)
    else:
        fresh = _merged({}, fresh)
        if existing is not None and "errorAction" in existing:
            fresh["errorAction"] = copy.deepcopy(existing["errorAction"])
    error_uri = form.get("errorUri")
    old_error: dict[str, Any] = fresh.get("errorAction") or {}
    if error_uri:
        kind = "Https" if error_uri.lower().startswith("https://") else "Http"
        base = old_error if old_error.get("request") is not None else {}
        fresh["errorAction"] = _merged(
            base,
            {"type": kind, "request": {"uri": error_uri, "method": "POST"}},
        )
        fresh["errorAction"]["request"]["body"] = form.raw("errorBody")
        fresh["errorAction"].setdefault("retryPolicy", {"retryType": "None"})
    elif old_error.get("request") is not None:
        del fresh["errorAction"]  # the form shows HTTP notifications: cleared means none
    return fresh


def properties_from_form(form: FormData, existing: Mapping[str, Any] | None) -> dict[str, Any]:
    """The job's properties (wire form) from the form, over ``existing`` ones if any."""
    properties: dict[str, Any] = copy.deepcopy(dict(existing or {}))
    properties.pop("status", None)
    properties.pop("startTime", None)
    properties.pop("recurrence", None)
    properties.update(schedule_from_form(form))
    properties["action"] = _action(form, (existing or {}).get("action"))
    for name in ("displayName", "owner"):
        if value := form.get(name):
            properties[name] = value
        else:
            properties.pop(name, None)
    return properties


def job_from_json(text: str, max_depth: int) -> dict[str, Any]:
    """Properties from pasted JSON (``{"properties": {...}}`` or the properties).

    Credentials show masked (they are never sent to the browser); sent back as shown, the
    service keeps their stored values (:mod:`scheduler.domain.credentials`).
    """
    if nested_deeper_than(text.encode(), max_depth):
        raise ValidationFailed(
            f"job JSON: nests more than {max_depth} levels deep (TAKT_MAX_JSON_DEPTH)",
            field="jobJson",
        )
    try:
        document: Any = json.loads(text)
    except ValueError as exc:
        raise ValidationFailed(f"job JSON: not JSON ({exc})", field="jobJson") from exc
    if isinstance(document, dict) and isinstance(document.get("properties"), dict):
        document = document["properties"]
    if not isinstance(document, dict):
        raise ValidationFailed("job JSON: a job is a JSON object", field="jobJson")
    properties: dict[str, Any] = document
    properties.pop("status", None)
    return properties


def diff_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7396 merge patch that turns ``current`` into ``wanted``."""
    patch: dict[str, Any] = {key: None for key in current if key not in wanted}
    for key, value in wanted.items():
        old = current.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            if inner := diff_patch(old, value):
                patch[key] = inner
        elif value != old:
            patch[key] = value
    return patch


# -- properties to form values ---------------------------------------------------------------


def _local_text(moment: str | None, zone: tzinfo) -> str:
    if not moment:
        return ""
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return parsed.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def _joined(values: Iterable[Any] | None) -> str:
    return ", ".join(str(v) for v in values or [])


def form_values(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The form's field values for a job's properties (wire form, without secrets)."""
    action: Mapping[str, Any] = properties.get("action") or {}
    request: Mapping[str, Any] = action.get("request") or {}
    queue: Mapping[str, Any] = action.get("queueMessage") or {}
    task: Mapping[str, Any] = action.get("celeryTask") or {}
    retry: Mapping[str, Any] = action.get("retryPolicy") or {}
    error: Mapping[str, Any] = (action.get("errorAction") or {}).get("request") or {}
    recurrence: Mapping[str, Any] = properties.get("recurrence") or {}
    schedule: Mapping[str, Any] = recurrence.get("schedule") or {}
    zone_name = recurrence.get("timeZone") or "UTC"
    zone = _zone(zone_name)
    end_kind = "count" if recurrence.get("count") else "never"
    end_kind = "endTime" if recurrence.get("endTime") else end_kind
    return {
        "displayName": properties.get("displayName", ""),
        "owner": properties.get("owner", ""),
        "actionType": "Http" if action.get("type") == "Https" else action.get("type", "Http"),
        "method": request.get("method", "GET"),
        "uri": request.get("uri", ""),
        "headers": "\n".join(f"{k}: {v}" for k, v in (request.get("headers") or {}).items()),
        "body": request.get("body") or "",
        "storageAccount": queue.get("storageAccount", ""),
        "queueName": queue.get("queueName", ""),
        "message": queue.get("message", ""),
        "celeryTask": task.get("name", ""),
        "celeryArgs": json.dumps(task["args"]) if task.get("args") is not None else "",
        "celeryKwargs": json.dumps(task["kwargs"]) if task.get("kwargs") is not None else "",
        "celeryQueue": task.get("queue") or "",
        "command": action.get("command") or "",
        "retryType": retry.get("retryType", "None"),
        "retryCount": retry.get("retryCount", 3),
        "retryInterval": retry.get("retryInterval", "PT30S"),
        "errorUri": error.get("uri", ""),
        "errorBody": error.get("body") or "",
        "scheduleKind": "recurring" if recurrence else "once",
        "startTime": _local_text(properties.get("startTime"), zone),
        "timeZone": zone_name,
        "frequency": "Cron" if recurrence.get("cron") else recurrence.get("frequency", "Day"),
        "cron": recurrence.get("cron") or "",
        "interval": recurrence.get("interval") or 1,
        "weekDays": list(schedule.get("weekDays") or []),
        "hours": _joined(schedule.get("hours")),
        "minutes": _joined(schedule.get("minutes")),
        "monthDays": _joined(schedule.get("monthDays")),
        "monthlyOccurrences": ", ".join(
            f"{o.get('Occurrence', o.get('occurrence'))} {o['day']}"
            for o in schedule.get("monthlyOccurrences") or []
        ),
        "months": _joined(schedule.get("months")),
        "endKind": end_kind,
        "count": recurrence.get("count") or "",
        "endTime": _local_text(recurrence.get("endTime"), zone),
    }
