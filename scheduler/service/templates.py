"""Job templates: ready-made job definitions for the common cases (MailStore's "Vorlagen").

A template has a few named fields, each with a default, and renders into the
``properties`` of a job. The console's "Create job" list, ``GET .../templates`` and
``takt jobs create --template NAME --set field=value`` all read this one catalog::

    >>> render_template("purge-history", {"olderThan": "P30D"})["action"]["command"]
    'PurgeHistory --older-than P30D'

Rendering validates the result with the wire model, so a bad field value is a
:class:`~scheduler.errors.ValidationFailed` that names the template field.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from scheduler.domain.models import JobProperties, describe_validation_error
from scheduler.errors import ValidationFailed

__all__ = ["TEMPLATES", "JobTemplate", "TemplateField", "get_template", "render_template"]

Values = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TemplateField:
    """One value a template asks for; ``default`` renders a valid job as it is."""

    name: str
    label: str
    default: str
    help: str = ""

    def to_wire(self) -> dict[str, str]:
        return {"name": self.name, "label": self.label, "default": self.default, "help": self.help}


@dataclass(frozen=True, slots=True)
class JobTemplate:
    """A named job definition with fields; :meth:`render` makes the job's properties."""

    name: str
    title: str
    description: str
    action_type: str
    build: Callable[[Values], dict[str, Any]]
    fields: tuple[TemplateField, ...] = ()
    recurrence: dict[str, Any] | None = field(default=None)

    def render(self, values: Values | None = None) -> dict[str, Any]:
        """The job's ``properties`` (wire form) with ``values`` over the fields' defaults.

        Raises:
            ValidationFailed: a value for a field the template does not have, or a
                rendered job the wire model refuses.
        """
        given = dict(values or {})
        known = {f.name for f in self.fields}
        if stray := sorted(set(given) - known):
            names = ", ".join(sorted(known)) or "none"
            raise ValidationFailed(
                f"template {self.name!r} has no field {', '.join(stray)} (its fields: {names})",
                field=stray[0],
            )
        merged = {f.name: given.get(f.name, f.default) for f in self.fields}
        properties = {"action": self.build(merged)}
        if self.recurrence is not None:
            properties["recurrence"] = self.recurrence
        try:
            return JobProperties.model_validate(properties).to_wire()
        except ValidationError as exc:
            raise ValidationFailed(
                f"template {self.name!r}: {describe_validation_error(exc, ('properties',))}"
            ) from exc

    def to_wire(self) -> dict[str, Any]:
        """The catalog entry the API answers: fields and the job its defaults make."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "actionType": self.action_type,
            "fields": [f.to_wire() for f in self.fields],
            "properties": self.render(),
        }


_NO_RETRY = {"retryType": "None"}
_DAILY_AT_3 = {"frequency": "Day", "interval": 1, "schedule": {"hours": [3], "minutes": [0]}}
_HOURLY = {"frequency": "Hour", "interval": 1}


def _http(values: Values) -> dict[str, Any]:
    uri = values["uri"]
    request: dict[str, Any] = {"uri": uri, "method": values["method"]}
    if values.get("body"):
        request["body"] = values["body"]
    kind = "Https" if uri.lower().startswith("https://") else "Http"
    return {"type": kind, "request": request, "retryPolicy": _NO_RETRY}


def _http_with_notification(values: Values) -> dict[str, Any]:
    action = _http(values)
    action["retryPolicy"] = {
        "retryType": "Fixed",
        "retryInterval": values["retryInterval"],
        "retryCount": _count(values["retryCount"]),
    }
    notify = values["notifyUri"]
    action["errorAction"] = {
        "type": "Https" if notify.lower().startswith("https://") else "Http",
        "request": {"uri": notify, "method": "POST", "body": values["notifyBody"]},
        "retryPolicy": _NO_RETRY,
    }
    return action


def _count(text: str) -> int:
    if not text.strip().isdigit():
        raise ValidationFailed(f"retryCount: {text!r} is not a whole number", field="retryCount")
    return int(text)


def _storage_queue(values: Values) -> dict[str, Any]:
    message: dict[str, Any] = {
        "storageAccount": values["storageAccount"],
        "queueName": values["queueName"],
        "message": values["message"],
    }
    if values.get("sasToken"):
        message["sasToken"] = values["sasToken"]
    return {"type": "StorageQueue", "queueMessage": message, "retryPolicy": _NO_RETRY}


def _celery(values: Values) -> dict[str, Any]:
    task: dict[str, Any] = {"name": values["task"]}
    if values.get("queue"):
        task["queue"] = values["queue"]
    return {"type": "Celery", "celeryTask": task, "retryPolicy": _NO_RETRY}


def _command(line: Callable[[Values], str]) -> Callable[[Values], dict[str, Any]]:
    def build(values: Values) -> dict[str, Any]:
        return {"type": "Command", "command": line(values), "retryPolicy": _NO_RETRY}

    return build


_URI = TemplateField("uri", "URI", "https://example.com/", "the address to call")
_METHOD = TemplateField("method", "Method", "GET", "GET, POST, PUT, DELETE …")
_BODY = TemplateField("body", "Body", "", "sent as the request body (POST, PUT)")
_OLDER_THAN = TemplateField("olderThan", "Older than", "P60D", "an ISO 8601 duration")
_COLLECTION = TemplateField(
    "collection", "Collection", "default/default/jobs", "subscription/resourceGroup/name"
)

#: Every template, in the order the console lists them.
TEMPLATES: tuple[JobTemplate, ...] = (
    JobTemplate(
        "http-request",
        "HTTP request",
        "Call a URL on a schedule; the answer's status code and an excerpt go to the history.",
        "Http",
        _http,
        (_URI, _METHOD, _BODY),
        _HOURLY,
    ),
    JobTemplate(
        "http-request-with-error-notification",
        "HTTP request with error notification",
        "Call a URL, retry it, and POST a notification to a second URL when it still fails.",
        "Http",
        _http_with_notification,
        (
            _URI,
            _METHOD,
            _BODY,
            TemplateField("retryCount", "Retries", "3", "0-20 further attempts"),
            TemplateField("retryInterval", "Retry interval", "PT30S", "an ISO 8601 duration"),
            TemplateField(
                "notifyUri", "Notify URI", "https://example.com/alerts", "called on failure"
            ),
            TemplateField("notifyBody", "Notify body", "job failed", "the notification's body"),
        ),
        _HOURLY,
    ),
    JobTemplate(
        "storage-queue-message",
        "Storage queue message",
        "Put a message into an Azure Storage queue (or Azurite).",
        "StorageQueue",
        _storage_queue,
        (
            TemplateField("storageAccount", "Storage account", "devstoreaccount1"),
            TemplateField("queueName", "Queue", "jobs"),
            TemplateField("message", "Message", "tick"),
            TemplateField("sasToken", "SAS token", "", "kept secret; never shown again"),
        ),
        _HOURLY,
    ),
    JobTemplate(
        "celery-task",
        "Celery task",
        "Send a named Celery task to a queue on the broker (arguments show in Flower).",
        "Celery",
        _celery,
        (
            TemplateField("task", "Task name", "myapp.tasks.tick"),
            TemplateField("queue", "Queue", "", "the broker queue; empty: the task's default"),
        ),
        _HOURLY,
    ),
    JobTemplate(
        "purge-history",
        "PurgeHistory",
        "Drop history entries older than a duration from every job.",
        "Command",
        _command(lambda v: f"PurgeHistory --older-than {shlex.quote(v['olderThan'])}"),
        (_OLDER_THAN,),
        _DAILY_AT_3,
    ),
    JobTemplate(
        "delete-finished-jobs",
        "DeleteFinishedJobs",
        "Delete Completed and Faulted jobs that finished longer ago than a duration.",
        "Command",
        _command(lambda v: f"DeleteFinishedJobs --older-than {shlex.quote(v['olderThan'])}"),
        (_OLDER_THAN,),
        _DAILY_AT_3,
    ),
    JobTemplate(
        "export-jobs",
        "ExportJobs",
        "Write a collection's jobs to a new file of the command folder (secrets masked, 0600).",
        "Command",
        _command(
            lambda v: (
                f"ExportJobs --collection {shlex.quote(v['collection'])}"
                f" --to {shlex.quote(v['to'])}"
            )
        ),
        (_COLLECTION, TemplateField("to", "File", "jobs-{now}.json")),
        _DAILY_AT_3,
    ),
    JobTemplate(
        "import-jobs",
        "ImportJobs",
        "Create or replace the jobs of an export file of the command folder (runs once).",
        "Command",
        _command(lambda v: f"ImportJobs --from {shlex.quote(v['source'])}"),
        (TemplateField("source", "File", "jobs.json"),),
        None,
    ),
    JobTemplate(
        "verify-store",
        "VerifyStore",
        "Check the job store's invariants; the run fails and reports what is wrong.",
        "Command",
        _command(lambda v: "VerifyStore"),
        (),
        _DAILY_AT_3,
    ),
)

_BY_NAME = {template.name: template for template in TEMPLATES}


def get_template(name: str) -> JobTemplate:
    """The template called ``name``.

    Raises:
        ValidationFailed: no such template (the message lists the names).
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        names = ", ".join(_BY_NAME)
        raise ValidationFailed(
            f"template: unknown template {name!r}; the templates are {names}", field="template"
        ) from None


def render_template(name: str, values: Values | None = None) -> dict[str, Any]:
    """The ``properties`` of a job made from template ``name`` with ``values``."""
    return get_template(name).render(values)
