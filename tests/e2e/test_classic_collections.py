"""The classic job collection lifecycle with MSDN's own bodies (tests/data/classic/), against
the stack's real API: create (202), get (the Resource), update with If-Match (202), delete
(202), and the same collection seen through the ARM routes."""

from __future__ import annotations

import uuid
from xml.etree import ElementTree

import httpx
import pytest

from tests.support.arm import API_VERSION
from tests.support.helpers import ROOT
from tests.support.stack import Stack

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


def test_the_seed_path_takes_the_same_writes(stack: Stack) -> None:
    # Given the seed document's ~/jobcollections spelling of the path
    sub = f"sub-{uuid.uuid4().hex[:8]}"
    seed = f"/{sub}/cloudservices/cs-seed/resources/scheduler/~/jobcollections/reports"
    # When MSDN's body is PUT there, then the collection deleted there
    created = stack.http.put(seed, content=CREATE, headers=XML)
    read = stack.http.get(seed)
    deleted = stack.http.delete(seed)
    # Then both are MSDN's 202, and in between the seed's GET answers the collection (JSON)
    assert (created.status_code, deleted.status_code) == (202, 202)
    assert read.json()["properties"]["sku"] == {"name": "Standard"}


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Resource xmlns="http://schemas.microsoft.com/windowsazure"><IntrinsicSettings><Plan>&lol2;</Plan>
</IntrinsicSettings></Resource>"""


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        pytest.param(BILLION_LAUGHS, XML, 400, "a DTD", id="entities-are-refused"),
        pytest.param(
            CREATE.replace(b"</Resource>", b"<Extra/></Resource>"),
            XML,
            400,
            "Resource/Extra is not a known element",
            id="an-unknown-element",
        ),
        pytest.param(
            CREATE.replace(b"<Plan>Standard</Plan>", b"<Plan>Gold</Plan>"),
            XML,
            400,
            "Plan 'Gold' is not one of",
            id="an-unknown-plan",
        ),
        pytest.param(
            CREATE.replace(b"<MaxJobCount>10</MaxJobCount>", b"<MaxJobCount>-1</MaxJobCount>"),
            XML,
            400,
            "MaxJobCount must be a whole number",
            id="a-negative-job-count",
        ),
        pytest.param(
            CREATE.replace(b"<Frequency>Second</Frequency>", b"<Frequency>Fortnight</Frequency>"),
            XML,
            400,
            "properties.quota.maxRecurrence.frequency",
            id="the-models-rules-apply",
        ),
        pytest.param(b"<Resource", XML, 400, "not well-formed XML", id="broken-xml"),
        pytest.param(b"x" * (64 * 1024 + 1), XML, 400, "the limit is 65,536", id="too-large"),
        pytest.param(b"{}", {"Content-Type": "application/json"}, 415, "XML", id="json"),
        pytest.param(
            CREATE, {**XML, "x-ms-version": "2012-03-01"}, 400, "too old", id="old-version"
        ),
    ],
)
def test_a_body_msdn_would_not_take_is_refused_before_anything_is_stored(
    stack: Stack,
    where: tuple[str, str, str],
    body: bytes,
    headers: dict[str, str],
    status: int,
    words: str,
) -> None:
    write, read, _ = where
    # Given a body that is not a valid Resource; When it is PUT
    response = stack.http.put(write, content=body, headers=headers)
    # Then it is refused, naming why, and no collection exists
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]
    assert stack.http.get(read).status_code == 404


def test_a_reader_cannot_create_a_collection(stack: Stack, where: tuple[str, str, str]) -> None:
    # Given a reader's key
    name = f"reader{uuid.uuid4().hex[:6]}"
    key = stack.http.post("/principals", json={"name": name, "role": "reader"}).json()["key"]
    write, read, _ = where
    with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}) as reader:
        # When it PUTs MSDN's body; Then 403, and nothing was created; the reader may read
        assert reader.put(write, content=CREATE, headers=XML).status_code == 403
        assert reader.get(read).status_code == 404
