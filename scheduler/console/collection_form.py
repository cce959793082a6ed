"""The collections page's New collection form (POST), through the API's service.

The form makes what ``PUT …/jobCollections/{name}`` makes, checked by the same
:class:`~scheduler.domain.refs.CollectionRef` names, :class:`~scheduler.domain.models.JobCollection`
model and :class:`~scheduler.service.job_collections.CollectionService`; unlike the PUT it
never replaces a collection of the same name (the console's "New" creates, as its New job
does). A refusal shows the collections page again with the message, what was typed and
the API's status code.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from scheduler.console.actions import check_csrf
from scheduler.console.forms import FormData
from scheduler.console.pages import collections_page
from scheduler.console.rendering import collection_url, error_status, require_writer, services
from scheduler.console.sessions import ConsoleSession
from scheduler.domain.models import JobCollection, describe_validation_error
from scheduler.domain.refs import CollectionRef
from scheduler.errors import CollectionNotFound, Conflict, TaktError, ValidationFailed

__all__ = ["FIELDS", "create_collection"]

#: The form's fields, named as the API's path parameters and body members, so a refusal
#: names the field as the API's would.
FIELDS = ("subscriptionId", "resourceGroupName", "jobCollectionName", "sku")
#: Where a collection made in the console says it is (as ``takt collections create``).
LOCATION = "local"


def _body(sku: str) -> JobCollection:
    wire: dict[str, Any] = {"location": LOCATION}
    if sku:
        wire["properties"] = {"sku": {"name": sku}}
    try:
        return JobCollection.model_validate(wire)
    except ValidationError as exc:
        raise ValidationFailed(describe_validation_error(exc)) from exc


def create_collection(request: Request, session: ConsoleSession, form: FormData) -> Response:
    """A new, empty collection; its Jobs page next."""
    _, collections, _ = services(request)
    try:
        check_csrf(session, form)
        require_writer(session)
        ref = CollectionRef(
            form.get("subscriptionId"), form.get("resourceGroupName"), form.get("jobCollectionName")
        )
        body = _body(form.get("sku"))
        try:
            collections.get(ref)
        except CollectionNotFound:
            pass
        else:
            raise Conflict(
                f"a job collection named {ref.name!r} exists in {ref.subscription}/"
                f"{ref.resource_group}; pick another name"
            )
        collections.put(ref, body)
    except TaktError as exc:
        typed = {name: form.get(name) for name in FIELDS}
        return collections_page(
            request, session, values=typed, error=str(exc), status_code=error_status(exc)
        )
    return RedirectResponse(f"{collection_url(ref)}?done=collection", status_code=303)
