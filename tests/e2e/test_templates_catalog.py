"""Job templates: each renders a job the service accepts; fields and names are checked."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from scheduler.domain.models import JobCollection, JobProperties
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.errors import ValidationFailed
from scheduler.service.jobs import JobService
from scheduler.service.management import COMMANDS
from scheduler.service.templates import TEMPLATES, get_template, render_template
from scheduler.store.jobs import JobStore
from scheduler.store.principals import Principal, PrincipalBook, Role
from tests.support.arm import API_VERSION, collection_path, new_collection
from tests.support.stack import Stack
from tests.support.swagger import checked

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_every_template_makes_a_job_the_service_accepts(store: JobStore, name: str) -> None:
    # Given a collection and the job service the API uses
    ref = CollectionRef("sub", "rg", "templates")
    store.put_collection(ref.cid, JobCollection(location="local"))
    service = JobService(store, PrincipalBook(store), lambda *_: None)

    # When the template's defaults are saved as a job
    properties = JobProperties.model_validate(render_template(name))
    record, created = service.put(
        JobRef(ref, name), properties, Principal("admin", Role.ADMIN), NOW
    )

    # Then it is created as it was rendered
    assert created
    assert record.properties.action == properties.action
    assert get_template(name).action_type in properties.action.type.value


def test_there_is_a_template_per_built_in_command_and_the_named_kinds() -> None:
    commands = {
        t.render()["action"]["command"].split()[0] for t in TEMPLATES if t.action_type == "Command"
    }
    kinds = {t.name for t in TEMPLATES if t.action_type != "Command"}

    assert commands == set(COMMANDS)
    assert kinds == {
        "http-request",
        "http-request-with-error-notification",
        "storage-queue-message",
        "celery-task",
    }


def test_values_fill_the_fields() -> None:
    properties = render_template(
        "http-request-with-error-notification",
        {"uri": "https://api.test/sync", "method": "post", "retryCount": "5"},
    )

    action = properties["action"]
    assert action["type"] == "Https"
    assert action["request"] == {"uri": "https://api.test/sync", "method": "POST"}
    assert action["retryPolicy"] == {
        "retryType": "Fixed",
        "retryInterval": "PT30S",
        "retryCount": 5,
    }
    assert action["errorAction"]["request"]["uri"] == "https://example.com/alerts"


def test_a_command_argument_is_quoted_as_one_word() -> None:
    properties = render_template("export-jobs", {"to": "backups/my jobs.json"})

    assert properties["action"]["command"] == (
        "ExportJobs --collection default/default/jobs --to 'backups/my jobs.json'"
    )


@pytest.mark.parametrize(
    ("name", "values", "field", "says"),
    [
        pytest.param("purge-history", {"days": "3"}, "days", "has no field days", id="stray"),
        pytest.param(
            "http-request-with-error-notification",
            {"retryCount": "many"},
            "retryCount",
            "not a whole number",
            id="retry-count",
        ),
        pytest.param("http-request", {"uri": "ftp://x"}, None, "uri", id="bad-uri"),
        pytest.param("no-such", {}, "template", "the templates are http-request", id="unknown"),
    ],
)
def test_bad_values_and_names_are_refused_by_name(
    name: str, values: dict[str, str], field: str | None, says: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        render_template(name, values)

    assert says in str(refused.value)
    if field is not None:
        assert refused.value.field == field


@pytest.mark.e2e
def test_the_api_lists_the_templates(stack: Stack) -> None:
    collection = new_collection(stack.http)

    answer = stack.http.get(f"{collection}/templates", params=API_VERSION)

    assert answer.status_code == 200, answer.text
    listed = answer.json()["value"]
    assert [t["name"] for t in listed] == [t.name for t in TEMPLATES]
    purge = next(t for t in listed if t["name"] == "purge-history")
    assert purge["fields"][0] == {
        "name": "olderThan",
        "label": "Older than",
        "default": "P60D",
        "help": "an ISO 8601 duration",
    }
    assert purge["properties"]["action"] == {
        "type": "Command",
        "command": "PurgeHistory --older-than P60D",
        "retryPolicy": {"retryType": "None"},
    }


@pytest.mark.e2e
def test_the_template_list_needs_a_key_and_a_collection(stack: Stack) -> None:
    missing = stack.http.get(f"{collection_path('nope-x')}/templates", params=API_VERSION)
    anonymous = checked(
        httpx.get(f"{stack.api_url}{collection_path('nope-x')}/templates", params=API_VERSION)
    )

    assert missing.status_code == 404
    assert anonymous.status_code == 401
