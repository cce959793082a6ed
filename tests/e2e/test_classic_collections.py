"""The classic job collection lifecycle with MSDN's own bodies (tests/data/classic/), against
the stack's real API: create (202), get (the Resource), update with If-Match (202), delete
(202), and the same collection seen through the ARM routes; errors as the Service
Management API answers them (XML ``Error``); the seed's lower-case paths, which take both
MSDN's XML and the seed's JSON."""

from __future__ import annotations

import uuid
from xml.etree import ElementTree

import httpx
import pytest

from tests.support.arm import API_VERSION
from tests.support.helpers import ROOT
from tests.support.stack import Stack
from tests.support.swagger import validating_client

pytestmark = pytest.mark.e2e

DATA = ROOT / "tests" / "data" / "classic"
CREATE = (DATA / "create-job-collection-request.xml").read_bytes()
GET_SAMPLE = (DATA / "get-job-collection-response.xml").read_bytes()
AZURE = "{http://schemas.microsoft.com/windowsazure}"
XML = {"Content-Type": "application/xml", "x-ms-version": "2013-06-01"}


def _paths(sub: str, cs: str, name: str) -> tuple[str, str, str]:
    """MSDN's write path, MSDN's read path and the ARM path of one collection."""
    return (
        f"/{sub}/cloudServices/{cs}/resources/scheduler/jobCollections/{name}",
        f"/{sub}/cloudservices/{cs}/resources/scheduler/~/jobCollections/{name}",
        f"/subscriptions/{sub}/resourceGroups/{cs}/providers/Microsoft.Scheduler/jobCollections/{name}",
    )


def _names(element: ElementTree.Element) -> list[str]:
    return [child.tag.removeprefix(AZURE) for child in element]


def _error(response: httpx.Response) -> tuple[str, str]:
    """The (Code, Message) of a Service Management error: XML ``Error`` in Azure's namespace,
    nothing else in it (MSDN, "Service Management Status and Error Codes")."""
    assert response.headers["content-type"].startswith("application/xml"), response.text
    error = ElementTree.fromstring(response.content)
    assert error.tag == f"{AZURE}Error", response.text
    assert _names(error) == ["Code", "Message"], response.text
    return error.findtext(f"{AZURE}Code") or "", error.findtext(f"{AZURE}Message") or ""


@pytest.fixture
def where() -> tuple[str, str, str]:
    return _paths(f"sub-{uuid.uuid4().hex[:8]}", "cs-classic", "JC101")


def test_the_collection_lifecycle_runs_with_msdns_bodies(
    stack: Stack, where: tuple[str, str, str]
) -> None:
    write, read, arm = where
    # Given MSDN's Create Job Collection body; When it is PUT
    created = stack.http.put(write, content=CREATE, headers=XML)
    # Then MSDN's 202, without a body, with a request id
    assert created.status_code == 202, created.text
    assert created.content == b""
    assert created.headers["x-ms-request-id"]

    # When it is read back (MSDN's Get Job Collection)
    got = stack.http.get(read, headers={"x-ms-version": "2013-06-01"})
    # Then the Resource has MSDN's sample's elements in MSDN's order, holding what was PUT
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("application/xml")
    resource = ElementTree.fromstring(got.content)
    assert _names(resource) == _names(ElementTree.fromstring(GET_SAMPLE))
    assert resource.findtext(f"{AZURE}Name") == "JC101"
    assert resource.findtext(f"{AZURE}ETag") == got.headers["ETag"]
    assert resource.findtext(f"{AZURE}OperationStatus/{AZURE}Result") == "Succeeded"
    settings = resource.find(f"{AZURE}IntrinsicSettings")
    assert settings is not None
    assert settings.findtext(f"{AZURE}Plan") == "Standard"
    assert settings.findtext(f"{AZURE}Quota/{AZURE}MaxJobCount") == "10"
    recurrence = f"{AZURE}Quota/{AZURE}MaxRecurrence/{AZURE}"
    assert (
        settings.findtext(recurrence + "Frequency"),
        settings.findtext(recurrence + "Interval"),
    ) == (
        "Second",
        "1",
    )
    # And the ARM routes show the same collection (the cloud service is the resource group)
    properties = stack.http.get(arm, params=API_VERSION).json()["properties"]
    assert properties["sku"] == {"name": "Standard"}
    assert properties["quota"] == {
        "maxJobCount": 10,
        "maxRecurrence": {"frequency": "Second", "interval": 1},
    }

    # When it is updated (MSDN's Update Job Collection) with a stale ETag, then the read one
    free = CREATE.replace(b"<Plan>Standard</Plan>", b"<Plan>Free</Plan>")
    stale = stack.http.put(write, content=free, headers={**XML, "If-Match": str(uuid.uuid4())})
    updated = stack.http.put(write, content=free, headers={**XML, "If-Match": got.headers["ETag"]})
    # Then the stale one is refused and the other accepted, with a new ETag
    assert stale.status_code == 412, stale.text
    assert updated.status_code == 202, updated.text
    again = stack.http.get(read)
    assert (
        ElementTree.fromstring(again.content).findtext(f"{AZURE}IntrinsicSettings/{AZURE}Plan")
        == "Free"
    )
    assert again.headers["ETag"] != got.headers["ETag"]

    # When it is deleted (MSDN's Delete Job Collection); Then 202, and it is gone
    deleted = stack.http.delete(write, headers={"x-ms-version": "2013-06-01"})
    assert deleted.status_code == 202, deleted.text
    assert stack.http.get(read).status_code == 404
    assert stack.http.get(arm, params=API_VERSION).status_code == 404


def _seed_paths() -> tuple[str, str]:
    """The seed document's write path (PUT, DELETE) and read path (GET) of one collection."""
    root = f"/sub-{uuid.uuid4().hex[:8]}/cloudservices/cs-seed/resources/scheduler"
    return f"{root}/jobcollections/reports", f"{root}/~/jobcollections/reports"


@pytest.mark.parametrize("spelling", ["jobcollections", "~/jobcollections"])
def test_the_seed_paths_run_msdns_lifecycle_with_msdns_bodies(stack: Stack, spelling: str) -> None:
    # Given the seed document's lower-case paths (writes on either spelling)
    write, read = _seed_paths()
    write = read if spelling.startswith("~") else write
    # When MSDN's Create body is PUT there, read back as MSDN reads, updated and deleted
    created = stack.http.put(write, content=CREATE, headers=XML)
    got = stack.http.get(read, headers={"x-ms-version": "2013-06-01"})
    asked = stack.http.get(read, headers={"Accept": "application/xml"})
    free = CREATE.replace(b"<Plan>Standard</Plan>", b"<Plan>Free</Plan>")
    stale = stack.http.put(write, content=free, headers={**XML, "If-Match": str(uuid.uuid4())})
    updated = stack.http.put(write, content=free, headers={**XML, "If-Match": got.headers["ETag"]})
    deleted = stack.http.delete(write, headers={"x-ms-version": "2013-06-01"})
    again = stack.http.delete(write, headers={"x-ms-version": "2013-06-01"})

    # Then each answers as on MSDN's paths: 202s, the Resource, Service Management's errors
    assert created.status_code == 202, created.text
    assert created.content == b""
    assert created.headers["x-ms-request-id"]
    assert got.status_code == 200, got.text
    resource = ElementTree.fromstring(got.content)
    assert _names(resource) == _names(ElementTree.fromstring(GET_SAMPLE))
    assert resource.findtext(f"{AZURE}IntrinsicSettings/{AZURE}Plan") == "Standard"
    assert asked.content == got.content
    assert stale.status_code == 412
    assert _error(stale)[0] == "PreconditionFailed"
    assert (updated.status_code, deleted.status_code) == (202, 202)
    assert again.status_code == 404
    assert _error(again)[0] == "ResourceNotFound"


@pytest.mark.parametrize("spelling", ["jobcollections", "~/jobcollections"])
def test_the_seed_paths_still_take_the_seeds_json(stack: Stack, spelling: str) -> None:
    # Given the seed document's paths
    write, read = _seed_paths()
    write = read if spelling.startswith("~") else write
    # When a JSON collection is PUT twice, read without asking for XML, refused, deleted
    created = stack.http.put(
        write, json={"location": "local", "properties": {"sku": {"name": "Free"}}}
    )
    replaced = stack.http.put(write, json={"location": "local"})
    read_back = stack.http.get(read)
    refused = stack.http.put(write, json={"location": 5})
    deleted = stack.http.delete(write)
    missing = stack.http.get(read)

    # Then it is the seed's JSON API: 201 then 200 with the collection, ARM's JSON errors;
    # and DELETE is MSDN's 202 on every spelling
    assert (created.status_code, replaced.status_code) == (201, 200), created.text
    assert created.json()["properties"]["sku"] == {"name": "Free"}
    assert read_back.headers["content-type"].startswith("application/json")
    assert read_back.json()["name"] == "reports"
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "BadRequest"
    assert deleted.status_code == 202, deleted.text
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "JobCollectionNotFound"


def test_msdns_operations_answer_errors_as_service_management_does(
    stack: Stack, where: tuple[str, str, str]
) -> None:
    # Given MSDN's paths of a collection that does not exist
    write, read, _ = where
    # When it is read and deleted, and written without a valid key
    got = stack.http.get(read, headers={"x-ms-version": "2013-06-01"})
    deleted = stack.http.delete(write, headers={"x-ms-version": "2013-06-01"})
    stranger = httpx.put(
        f"{stack.api_url}{write}", content=CREATE, headers={**XML, "Authorization": "Bearer x"}
    )
    # Then each is the status with Service Management's XML error (MSDN's codes)
    assert (got.status_code, _error(got)[0]) == (404, "ResourceNotFound")
    assert "not found" in _error(got)[1]
    assert (deleted.status_code, _error(deleted)[0]) == (404, "ResourceNotFound")
    assert (stranger.status_code, _error(stranger)[0]) == (401, "AuthenticationFailed")
    assert stranger.headers["WWW-Authenticate"] == "Bearer"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Resource xmlns="http://schemas.microsoft.com/windowsazure"><IntrinsicSettings><Plan>&lol2;</Plan>
</IntrinsicSettings></Resource>"""


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "words"),
    [
        pytest.param(
            BILLION_LAUGHS, XML, 400, "InvalidXmlRequest", "a DTD", id="entities-are-refused"
        ),
        pytest.param(
            CREATE.replace(b"</Resource>", b"<Extra/></Resource>"),
            XML,
            400,
            "InvalidXmlRequest",
            "Resource/Extra is not a known element",
            id="an-unknown-element",
        ),
        pytest.param(
            CREATE.replace(b"<Plan>Standard</Plan>", b"<Plan>Gold</Plan>"),
            XML,
            400,
            "InvalidXmlRequest",
            "Plan 'Gold' is not one of",
            id="an-unknown-plan",
        ),
        pytest.param(
            CREATE.replace(b"<MaxJobCount>10</MaxJobCount>", b"<MaxJobCount>-1</MaxJobCount>"),
            XML,
            400,
            "InvalidXmlRequest",
            "MaxJobCount must be a whole number",
            id="a-negative-job-count",
        ),
        pytest.param(
            CREATE.replace(b"<Frequency>Second</Frequency>", b"<Frequency>Fortnight</Frequency>"),
            XML,
            400,
            "BadRequest",
            "properties.quota.maxRecurrence.frequency",
            id="the-models-rules-apply",
        ),
        pytest.param(
            b"<Resource", XML, 400, "InvalidXmlRequest", "not well-formed XML", id="broken-xml"
        ),
        pytest.param(
            b"x" * (64 * 1024 + 1),
            XML,
            400,
            "InvalidXmlRequest",
            "the limit is 65,536",
            id="too-large",
        ),
        pytest.param(
            b"{}",
            {"Content-Type": "application/json"},
            415,
            "UnsupportedMediaType",
            "XML",
            id="json",
        ),
        pytest.param(
            CREATE,
            {**XML, "x-ms-version": "2012-03-01"},
            400,
            "BadRequest",
            "too old",
            id="old-version",
        ),
    ],
)
def test_a_body_msdn_would_not_take_is_refused_before_anything_is_stored(
    stack: Stack,
    where: tuple[str, str, str],
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
    words: str,
) -> None:
    write, read, _ = where
    # Given a body that is not a valid Resource; When it is PUT
    response = stack.http.put(write, content=body, headers=headers)
    # Then it is refused with Service Management's error, naming why, and no collection exists
    assert response.status_code == status, response.text
    got_code, message = _error(response)
    assert got_code == code
    assert words in message
    assert stack.http.get(read).status_code == 404


def test_a_reader_cannot_create_a_collection(stack: Stack, where: tuple[str, str, str]) -> None:
    # Given a reader's key
    name = f"reader{uuid.uuid4().hex[:6]}"
    key = stack.http.post("/principals", json={"name": name, "role": "reader"}).json()["key"]
    write, read, _ = where
    with validating_client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}
    ) as reader:
        # When it PUTs MSDN's body; Then 403, and nothing was created; the reader may read
        refused = reader.put(write, content=CREATE, headers=XML)
        assert refused.status_code == 403
        assert _error(refused)[0] == "AuthorizationFailed"
        assert reader.get(read).status_code == 404
