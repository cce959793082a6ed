"""Azure Scheduler's rules over the API: quotas, limits, owners, roles, run, PATCH, paging."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import httpx
import pytest

from tests.support import jsonc
from tests.support.arm import API_VERSION, collection_path, get_job, history, http_job, put_job
from tests.support.helpers import ROOT, HttpTarget, wait_until
from tests.support.stack import Stack
from tests.support.swagger import validating_client

pytestmark = pytest.mark.e2e

FUTURE = "2099-01-01T00:00:00Z"
SEED_JOB = ROOT / "tests" / "data" / "seed_job.jsonc"


def collection(stack: Stack, **properties: Any) -> str:
    path = collection_path(f"rules-{uuid.uuid4().hex[:10]}")
    response = stack.http.put(
        path, params=API_VERSION, json={"location": "local", "properties": properties}
    )
    assert response.status_code == 201, response.text
    return path


def future_job(**extra: Any) -> dict[str, Any]:
    body = http_job("http://127.0.0.1:9/x", **extra)
    body["properties"].setdefault("startTime", FUTURE)
    return body


def put(stack: Stack, path: str, body: dict[str, Any]) -> httpx.Response:
    return stack.http.put(path, params=API_VERSION, json=body)


def error(response: httpx.Response) -> str:
    message: str = response.json()["error"]["message"]
    return message


# -- quotas --------------------------------------------------------------------------------


def test_the_free_sku_allows_five_jobs_then_a_409_naming_the_quota(stack: Stack) -> None:
    coll = collection(stack, sku={"name": "Free"})
    for i in range(5):
        assert put(stack, f"{coll}/jobs/j{i}", future_job()).status_code == 201
    sixth = put(stack, f"{coll}/jobs/j5", future_job())
    assert sixth.status_code == 409
    assert sixth.json()["error"]["code"] == "QuotaExceeded"
    assert "maxJobCount" in error(sixth)
    # replacing an existing job is not a new one
    assert put(stack, f"{coll}/jobs/j0", future_job()).status_code == 200


@pytest.mark.parametrize(
    ("sku", "recurrence", "allowed"),
    [
        ("Free", {"frequency": "Minute", "interval": 30}, False),
        ("Free", {"frequency": "Hour"}, True),
        ("Standard", {"frequency": "Second", "interval": 30}, False),
        ("Standard", {"frequency": "Minute"}, True),
        ("P20Premium", {"frequency": "Hour", "schedule": {"minutes": [0, 0, 30]}}, True),
        (None, {"frequency": "Second"}, True),
    ],
    ids=[
        "free-30min",
        "free-hourly",
        "standard-30s",
        "standard-minutely",
        "p20-schedule",
        "self-hosted-1s",
    ],
)
def test_max_recurrence_follows_the_sku(
    stack: Stack, sku: str | None, recurrence: dict[str, Any], allowed: bool
) -> None:
    coll = collection(stack, **({"sku": {"name": sku}} if sku else {}))
    response = put(stack, f"{coll}/jobs/r", future_job(recurrence=recurrence))
    assert response.status_code == (201 if allowed else 409), response.text
    if not allowed:
        assert "maxRecurrence" in error(response)


def test_an_explicit_quota_overrides_the_sku(stack: Stack) -> None:
    coll = collection(
        stack,
        sku={"name": "Free"},
        quota={"maxJobCount": 7, "maxRecurrence": {"frequency": "Minute", "interval": 1}},
    )
    for i in range(7):
        body = future_job(recurrence={"frequency": "Minute"})
        assert put(stack, f"{coll}/jobs/j{i}", body).status_code == 201
    assert put(stack, f"{coll}/jobs/j7", future_job()).status_code == 409


# -- limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda r: r.update(uri="http://example.test/" + "a" * 2030), "uri"),
        (lambda r: r.update(headers={f"h{i}": "v" for i in range(51)}), "headers"),
        (lambda r: r.update(body="b" * 8193), "body"),
        (
            lambda r: r.update(body="b" * 8000, headers={f"h{i}": "v" * 200 for i in range(45)}),
            "16 KB",
        ),
    ],
    ids=["uri-2049", "51-headers", "body-8193", "job-over-16kb"],
)
def test_over_a_limit_is_a_400_naming_it(stack: Stack, mutate: Any, named: str) -> None:
    coll = collection(stack)
    body = future_job()
    mutate(body["properties"]["action"]["request"])
    response = put(stack, f"{coll}/jobs/big", body)
    assert response.status_code == 400
    assert named in error(response)
    assert "limit" in error(response)


@pytest.mark.parametrize(
    ("message", "named"),
    [
        pytest.param(
            {"queueName": "q", "namespace": "ns", "message": "m"},
            "serviceBusQueueMessage.namespace: 'ns' does not fit: 6 to 50 letters",
            id="a-namespace-azure-refuses",
        ),
        pytest.param(
            {"queueName": "q", "namespace": "contoso", "message": "m"},
            "serviceBusQueueMessage.authentication: is required",
            id="no-authentication",
        ),
        pytest.param(
            {"namespace": "contoso", "authentication": {"sasKeyName": "k", "sasKey": "v"}},
            "serviceBusQueueMessage.queueName: is required",
            id="no-queue",
        ),
        pytest.param(
            {"queueName": "q", "namespace": "contoso", "authentication": {"sasKeyName": "k"}},
            "serviceBusQueueMessage.authentication.sasKey: is required",
            id="no-key",
        ),
        pytest.param(
            {
                "queueName": "q",
                "namespace": "contoso",
                "authentication": {"sasKeyName": "k", "sasKey": "v"},
                "customMessageProperties": {"BrokerProperties": "{}"},
            },
            "'BrokerProperties' is a header the Service Bus call sets itself",
            id="a-custom-property-in-place-of-a-header-takt-sets",
        ),
    ],
)
def test_a_service_bus_action_that_could_not_be_sent_is_refused_naming_the_field(
    stack: Stack, message: dict[str, Any], named: str
) -> None:
    # Given a ServiceBusQueue action missing what sending needs, or with a value Azure refuses
    coll = collection(stack)
    body = {
        "properties": {"action": {"type": "ServiceBusQueue", "serviceBusQueueMessage": message}}
    }
    # When it is put
    response = put(stack, f"{coll}/jobs/bus", body)
    # Then it is a 400 naming the field and the rule
    assert response.status_code == 400
    assert named in error(response)


# -- principals, roles, owners -------------------------------------------------------------


def test_principals_readers_and_owners(stack: Stack) -> None:
    # Given a reader and a second administrator
    name = f"reader{uuid.uuid4().hex[:6]}"
    added = stack.http.post("/principals", json={"name": name, "role": "reader"})
    assert added.status_code == 201
    reader_key = added.json()["key"]
    boss = f"boss{uuid.uuid4().hex[:6]}"
    assert stack.http.post("/principals", json={"name": boss, "role": "admin"}).status_code == 201
    listed = stack.http.get("/principals").json()["value"]
    assert {"name": name, "role": "reader"} in listed
    assert all("key" not in p for p in listed)

    # Then the reader sees everything and changes nothing
    coll = collection(stack)
    put(stack, f"{coll}/jobs/owned", future_job())
    reader = validating_client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {reader_key}"}
    )
    assert reader.get(f"{coll}/jobs/owned", params=API_VERSION).status_code == 200
    denied = reader.put(f"{coll}/jobs/owned", params=API_VERSION, json=future_job())
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "AuthorizationFailed"

    # and a job's owner defaults to its creator, may become another admin, never a reader
    assert get_job(stack.http, coll, "owned")["properties"]["owner"] == "admin"
    patch = stack.http.patch(
        f"{coll}/jobs/owned", params=API_VERSION, json={"properties": {"owner": name}}
    )
    assert patch.status_code == 400
    assert "not an administrator" in error(patch)
    patch = stack.http.patch(
        f"{coll}/jobs/owned", params=API_VERSION, json={"properties": {"owner": boss}}
    )
    assert patch.status_code == 200
    assert patch.json()["properties"]["owner"] == boss

    # and a revoked key stops working at once
    assert stack.http.delete(f"/principals/{name}").status_code == 200
    assert reader.get(f"{coll}/jobs/owned", params=API_VERSION).status_code == 401
    reader.close()


def test_the_last_administrator_cannot_be_revoked(stack: Stack) -> None:
    others = [
        p["name"]
        for p in stack.http.get("/principals").json()["value"]
        if p["role"] == "admin" and p["name"] != "admin"
    ]
    for other in others:
        stack.http.delete(f"/principals/{other}")
    response = stack.http.delete("/principals/admin")
    assert response.status_code == 409
    assert "last administrator" in error(response)


# -- run -----------------------------------------------------------------------------------


def test_run_executes_now_and_a_disabled_job_or_collection_refuses(
    stack: Stack, target: HttpTarget
) -> None:
    # Given an enabled job far in the future
    coll = collection(stack)
    body = http_job(f"{target.url}/manual")
    body["properties"]["startTime"] = FUTURE
    put_job(stack.http, coll, "later", body)

    # When it is run by hand, it runs now, shows in history, and stays Enabled
    assert stack.http.post(f"{coll}/jobs/later/run", params=API_VERSION).status_code == 200
    entries = wait_until(lambda: history(stack.http, coll, "later"), timeout=5)
    assert entries[0]["properties"]["status"] == "Completed"
    job = get_job(stack.http, coll, "later")
    assert job["properties"]["state"] == "Enabled"
    assert job["properties"]["status"]["nextExecutionTime"] == FUTURE

    # When the job is disabled, Start is refused with a 409 saying so
    stack.http.patch(
        f"{coll}/jobs/later", params=API_VERSION, json={"properties": {"state": "Disabled"}}
    )
    refused = stack.http.post(f"{coll}/jobs/later/run", params=API_VERSION)
    assert refused.status_code == 409
    assert "disabled" in error(refused)

    # and so it is for any job of a disabled collection
    stack.http.patch(
        f"{coll}/jobs/later", params=API_VERSION, json={"properties": {"state": "Enabled"}}
    )
    assert stack.http.post(f"{coll}/disable", params=API_VERSION).status_code == 200
    refused = stack.http.post(f"{coll}/jobs/later/run", params=API_VERSION)
    assert refused.status_code == 409
    assert "collection" in error(refused)
    assert len(target.requests_to("/manual")) == 1


# -- PATCH ---------------------------------------------------------------------------------


def test_patch_merges_and_keeps_what_it_does_not_name(stack: Stack) -> None:
    coll = collection(stack)
    body = future_job(recurrence={"frequency": "Hour", "interval": 2})
    body["properties"]["action"]["request"]["authentication"] = {
        "type": "Basic",
        "username": "u",
        "password": "kept-secret",
    }
    before = put_job(stack.http, coll, "p", body)

    renamed = stack.http.patch(
        f"{coll}/jobs/p", params=API_VERSION, json={"properties": {"displayName": "Nightly export"}}
    )

    assert renamed.status_code == 200
    after = renamed.json()["properties"]
    assert after["displayName"] == "Nightly export"
    assert after["recurrence"] == before["properties"]["recurrence"]
    assert (
        after["status"]["nextExecutionTime"] == before["properties"]["status"]["nextExecutionTime"]
    )
    assert after["action"]["request"]["authentication"] == {
        "type": "Basic",
        "username": "u",
        "password": "",
    }
    # the id never changes with a rename
    assert renamed.json()["name"].endswith("/p")

    moved = stack.http.patch(
        f"{coll}/jobs/p",
        params=API_VERSION,
        json={"properties": {"startTime": "2098-06-01T12:00:00Z"}},
    )
    assert moved.json()["properties"]["status"]["nextExecutionTime"] == "2098-06-01T12:00:00Z"
    bad = stack.http.patch(
        f"{coll}/jobs/p", params=API_VERSION, json={"properties": {"status": {"executionCount": 9}}}
    )
    assert bad.status_code == 400


# -- collections ---------------------------------------------------------------------------


def test_disable_and_enable_act_on_every_unfinished_job(stack: Stack, target: HttpTarget) -> None:
    coll = collection(stack)
    for name in ("a", "b"):
        put_job(stack.http, coll, name, future_job())
    put_job(stack.http, coll, "done", http_job(f"{target.url}/done"))
    wait_until(
        lambda: get_job(stack.http, coll, "done")["properties"]["state"] == "Completed", timeout=5
    )

    assert stack.http.post(f"{coll}/disable", params=API_VERSION).status_code == 200
    states = {n: get_job(stack.http, coll, n)["properties"]["state"] for n in ("a", "b", "done")}
    assert states == {"a": "Disabled", "b": "Disabled", "done": "Completed"}
    assert stack.http.get(coll, params=API_VERSION).json()["properties"]["state"] == "Disabled"

    assert stack.http.post(f"{coll}/enable", params=API_VERSION).status_code == 200
    job = get_job(stack.http, coll, "a")["properties"]
    assert job["state"] == "Enabled"
    assert job["status"]["nextExecutionTime"] == FUTURE


def test_listing_filters_and_pages_with_next_link(stack: Stack) -> None:
    coll = collection(stack)
    for i in range(5):
        state = "Disabled" if i % 2 else "Enabled"
        put_job(stack.http, coll, f"j{i}", future_job(state=state))

    disabled = stack.http.get(
        f"{coll}/jobs", params={**API_VERSION, "$filter": "state eq 'Disabled'"}
    )
    assert [j["name"].split("/")[1] for j in disabled.json()["value"]] == ["j1", "j3"]

    names: list[str] = []
    url: str | None = f"{stack.api_url}{coll}/jobs?api-version=2016-03-01&$top=2"
    pages = 0
    while url:
        page = stack.http.get(url).json()
        names += [j["name"].split("/")[1] for j in page["value"]]
        url = page.get("nextLink")
        pages += 1
    assert names == [f"j{i}" for i in range(5)]
    assert pages == 3

    bad = stack.http.get(f"{coll}/jobs", params={**API_VERSION, "$filter": "name eq 'x'"})
    assert bad.status_code == 400
    assert "$filter" in error(bad)


def test_collections_list_both_ways_and_delete_takes_the_jobs(stack: Stack) -> None:
    sub = f"sub{uuid.uuid4().hex[:6]}"
    paths = [
        collection_path(name, sub=sub, rg=rg)
        for name, rg in (("one", "rg-a"), ("two", "rg-a"), ("three", "rg-b"))
    ]
    for path in paths:
        put(stack, path, {"location": "local"})
    put(stack, f"{paths[0]}/jobs/j", future_job())

    by_sub = stack.http.get(
        f"/subscriptions/{sub}/providers/Microsoft.Scheduler/jobCollections", params=API_VERSION
    ).json()["value"]
    by_group = stack.http.get(
        f"/subscriptions/{sub}/resourceGroups/rg-a/providers/Microsoft.Scheduler/jobCollections",
        params=API_VERSION,
    ).json()["value"]
    assert sorted(c["name"] for c in by_sub) == ["one", "three", "two"]
    assert sorted(c["name"] for c in by_group) == ["one", "two"]

    assert stack.http.delete(paths[0], params=API_VERSION).status_code == 200
    assert stack.http.get(paths[0], params=API_VERSION).status_code == 404
    put(stack, paths[0], {"location": "local"})
    assert stack.http.get(f"{paths[0]}/jobs/j", params=API_VERSION).status_code == 404


# -- the classic paths ---------------------------------------------------------------------


def test_the_seed_job_round_trips_through_the_classic_paths(stack: Stack) -> None:
    # Given the seed document's job and a collection under a cloud service
    seed = jsonc.loads(SEED_JOB.read_text())
    service = f"/sub1/cloudservices/cs{uuid.uuid4().hex[:6]}/resources/scheduler"
    assert (
        stack.http.put(f"{service}/jobcollections/coll", json={"location": "local"}).status_code
        == 201
    )

    # When it is posted to the jobs path (status and all, as a classic client would)
    created = stack.http.post(f"{service}/~/jobcollections/coll/jobs", json=seed)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    fetched = stack.http.get(f"{service}/~/jobcollections/coll/jobs/{job_id}").json()

    # Then what comes back is the seed in Azure's casing, with the server's status
    expected = copy.deepcopy(seed)
    expected.pop("status")
    assert fetched["id"] == job_id
    assert fetched["startTime"] == "2012-08-04T00:00:00Z"
    assert fetched["action"]["type"] == "Http"
    assert fetched["action"]["request"] == expected["action"]["request"]
    assert (
        fetched["action"]["errorAction"]["request"] == expected["action"]["errorAction"]["request"]
    )
    assert fetched["recurrence"]["schedule"] == {
        "weekDays": ["Monday", "Wednesday", "Friday"],
        "hours": [10, 22],
    }
    assert fetched["recurrence"]["count"] == 10
    assert fetched["recurrence"]["endTime"] == "2012-11-04T00:00:00Z"
    assert fetched["state"] == "Disabled"
    assert fetched["status"]["executionCount"] == 0
    listed = stack.http.get(f"{service}/~/jobcollections/coll/jobs").json()
    assert [j["id"] for j in listed] == [job_id]


def test_classic_secrets_are_nulled(stack: Stack) -> None:
    service = f"/sub1/cloudservices/cs{uuid.uuid4().hex[:6]}/resources/scheduler"
    stack.http.put(f"{service}/jobcollections/coll", json={"location": "local"})
    job = {
        "startTime": FUTURE,
        "action": {
            "type": "storageQueue",
            "queueMessage": {
                "storageAccount": "acct",
                "queueName": "q",
                "sasToken": "sig=secret",
                "message": "m",
            },
        },
    }
    answer = stack.http.put(f"{service}/~/jobcollections/coll/jobs/q", json=job)
    assert answer.status_code == 201, answer.text
    assert answer.json()["action"]["queueMessage"]["sasToken"] == ""
    assert "sig=secret" not in answer.text
