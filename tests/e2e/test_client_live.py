"""The Python client against the real API (the session stack); what it sends and how it maps
answers is tests/unit/test_client.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from scheduler.client import SchedulerClient
from scheduler.domain.models import JobState
from scheduler.errors import (
    AuthenticationFailed,
    CollectionNotFound,
    Conflict,
    Forbidden,
    JobNotFound,
    ValidationFailed,
)
from tests.support.helpers import HttpTarget, wait_until
from tests.support.stack import Stack
from tests.support.swagger import ValidatingTransport
from tests.unit.test_client import properties


@pytest.fixture
def subscription() -> str:
    """A subscription of the test's own, so lists see only what the test made."""
    return f"sub-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def live(stack: Stack, subscription: str) -> Iterator[SchedulerClient]:
    with SchedulerClient(
        stack.api_url,
        stack.token,
        subscription=subscription,
        resource_group="rg",
        transport=ValidatingTransport(),
    ) as takt:
        yield takt


@pytest.fixture
def live_collection(live: SchedulerClient) -> str:
    name = f"coll-{uuid.uuid4().hex[:8]}"
    live.create_collection(name)
    return name


@pytest.mark.e2e
def test_live_collection_round_trip(live: SchedulerClient) -> None:
    made = live.create_collection("billing", sku="Standard", quota={"maxJobCount": 7})

    found = live.get_collection("billing")

    assert found == made
    assert (found.name, found.location) == ("billing", "local")
    assert found.properties.quota is not None
    assert found.properties.quota.max_job_count == 7
    assert found.id.endswith(
        "/resourceGroups/rg/providers/Microsoft.Scheduler/jobCollections/billing"
    )


@pytest.mark.e2e
def test_live_job_create_get_occurrences_delete(
    live: SchedulerClient, live_collection: str
) -> None:
    # Given a job that fires hourly from 2030
    definition = properties(
        startTime="2030-01-01T09:00:00Z", recurrence={"frequency": "Hour", "interval": 1}
    )

    # When it is created, read and previewed
    made = live.create_job(live_collection, "hourly", definition)
    found = live.get_job(live_collection, "hourly")
    moments = live.occurrences(live_collection, "hourly", count=3)

    # Then it is what was sent, with its state and status
    assert found.properties == made.properties
    assert (found.collection, found.name) == (live_collection, "hourly")
    assert found.properties.state is JobState.ENABLED
    assert moments == [datetime(2030, 1, 1, 9 + h, tzinfo=UTC) for h in range(3)]

    # And once deleted it is not found
    live.delete_job(live_collection, "hourly")
    with pytest.raises(JobNotFound, match="hourly"):
        live.get_job(live_collection, "hourly")


@pytest.mark.e2e
def test_live_errors_carry_the_servers_message(live: SchedulerClient, stack: Stack) -> None:
    with pytest.raises(CollectionNotFound, match="nowhere"):
        live.get_job("nowhere", "j")
    live.create_collection("c")
    with pytest.raises(ValidationFailed) as raised:
        live.create_job("c", "bad", properties("not a uri"))
    assert raised.value.field is not None
    assert raised.value.field.startswith("properties.action.request")
    with (
        SchedulerClient(stack.api_url, "wrong-key", transport=ValidatingTransport()) as stranger,
        pytest.raises(AuthenticationFailed),
    ):
        stranger.get_collection("c")


@pytest.mark.e2e
def test_live_history_of_a_job_that_ran(
    live: SchedulerClient, live_collection: str, target: HttpTarget
) -> None:
    # Given a job without a start time, which runs at once
    live.create_job(live_collection, "now", properties(f"{target.url}/hook"))

    # When it has run
    records = wait_until(lambda: live.history(live_collection, "now"), timeout=10)

    # Then its history holds one Completed main action
    [record] = records
    assert record.entry.status.value == "Completed"
    assert record.entry.action_name.value == "MainAction"
    assert record.id.endswith(f"/jobs/now/history/{record.id.rsplit('/', 1)[1]}")


@pytest.mark.e2e
def test_live_list_collections_by_group_and_subscription(live: SchedulerClient) -> None:
    live.create_collection("one")
    live.create_collection("two")

    assert {c.name for c in live.list_collections()} == {"one", "two"}
    assert {c.name for c in live.list_collections(None)} == {"one", "two"}
    assert live.list_collections("empty-group") == []


@pytest.mark.e2e
def test_live_update_enable_disable_delete_collection(live: SchedulerClient) -> None:
    live.create_collection("c")

    updated = live.update_collection("c", {"properties": {"quota": {"maxJobCount": 3}}})
    live.disable_collection("c")
    disabled = live.get_collection("c")
    live.enable_collection("c")
    enabled = live.get_collection("c")
    live.delete_collection("c")

    assert updated.properties.quota is not None
    assert updated.properties.quota.max_job_count == 3
    assert disabled.properties.state is not None
    assert disabled.properties.state.value == "Disabled"
    assert enabled.properties.state is not None
    assert enabled.properties.state.value == "Enabled"
    with pytest.raises(CollectionNotFound):
        live.get_collection("c")


@pytest.mark.e2e
def test_live_list_jobs_pages_and_filters(live: SchedulerClient, live_collection: str) -> None:
    # Given five future jobs, two of them disabled
    for index in range(5):
        state = "Disabled" if index < 2 else "Enabled"
        later = properties(startTime="2030-01-01T00:00:00Z", state=state)
        live.create_job(live_collection, f"job-{index}", later)

    # When listed whole, filtered and capped
    every = live.list_jobs(live_collection)
    disabled = live.list_jobs(live_collection, state="Disabled")
    first_two = live.list_jobs(live_collection, top=2)

    # Then
    assert sorted(job.name for job in every) == [f"job-{i}" for i in range(5)]
    assert sorted(job.name for job in disabled) == ["job-0", "job-1"]
    assert len(first_two) == 2


@pytest.mark.e2e
def test_live_patch_rename_chown_enable_disable(
    live: SchedulerClient, live_collection: str
) -> None:
    live.create_job(live_collection, "j", properties(startTime="2030-01-01T00:00:00Z"))

    patched = live.update_job(live_collection, "j", {"startTime": "2031-01-01T00:00:00Z"})
    renamed = live.rename_job(live_collection, "j", "Nightly invoices")
    owned = live.change_owner(live_collection, "j", "admin")
    disabled = live.disable_job(live_collection, "j")
    enabled = live.enable_job(live_collection, "j")

    assert patched.properties.start_time == datetime(2031, 1, 1, tzinfo=UTC)
    assert renamed.properties.display_name == "Nightly invoices"
    assert owned.properties.owner == "admin"
    assert disabled.properties.state is JobState.DISABLED
    assert enabled.properties.state is JobState.ENABLED


@pytest.mark.e2e
def test_live_run_now_and_a_disabled_job_cannot_run(
    live: SchedulerClient, live_collection: str, target: HttpTarget
) -> None:
    later = properties(f"{target.url}/manual", startTime="2030-01-01T00:00:00Z")
    live.create_job(live_collection, "manual", later)

    live.run_job(live_collection, "manual")

    wait_until(lambda: target.requests_to("/manual"), timeout=10, message="the manual run")
    live.disable_job(live_collection, "manual")
    with pytest.raises(Conflict):
        live.run_job(live_collection, "manual")


@pytest.mark.e2e
def test_live_history_filters_by_status(
    live: SchedulerClient, live_collection: str, target: HttpTarget
) -> None:
    target.answer("/broken", 500, b"kaputt")
    live.create_job(live_collection, "doomed", properties(f"{target.url}/broken"))
    wait_until(lambda: live.history(live_collection, "doomed"), timeout=10)

    assert live.history(live_collection, "doomed", status="Completed") == []
    assert len(live.history(live_collection, "doomed", status="Failed")) >= 1


@pytest.mark.e2e
def test_live_principals_add_list_use_revoke(
    live: SchedulerClient, stack: Stack, subscription: str
) -> None:
    # Given a new reader
    name = f"reader-{uuid.uuid4().hex[:6]}"
    key = live.add_principal(name, "reader")

    # Then it is listed, its key reads but cannot write
    assert (name, "reader") in {(p.name, p.role) for p in live.list_principals()}
    with SchedulerClient(
        stack.api_url,
        key,
        subscription=subscription,
        resource_group="rg",
        transport=ValidatingTransport(),
    ) as reader:
        live.create_collection("shared")
        assert reader.get_collection("shared").name == "shared"
        with pytest.raises(Forbidden):
            reader.create_collection("mine")

        # And once revoked the key no longer works
        live.revoke_principal(name)
        with pytest.raises(AuthenticationFailed):
            reader.get_collection("shared")
