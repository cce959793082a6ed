"""Service Management's errors and the seed paths' choice between MSDN's XML and JSON."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from starlette.datastructures import Headers

from scheduler.api.classic_collections import speaks_service_management
from scheduler.api.errors import arm_error, as_service_management_error, service_management_error

AZURE = "{http://schemas.microsoft.com/windowsazure}"


def test_an_error_is_service_managements_xml_whatever_its_message_holds() -> None:
    # Given a message quoting what a client sent: markup, and characters XML cannot carry
    message = "name '<a>&\x00\x1b' is not valid"

    # When it becomes a Service Management error
    answer = service_management_error(400, "BadRequest", message)

    # Then it is well-formed XML in Azure's namespace, holding the message (the rest replaced)
    error = ElementTree.fromstring(bytes(answer.body))
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/xml")
    assert [child.tag for child in error] == [f"{AZURE}Code", f"{AZURE}Message"]
    assert error.findtext(f"{AZURE}Code") == "BadRequest"
    assert error.findtext(f"{AZURE}Message") == "name '<a>&\ufffd\ufffd' is not valid"


@pytest.mark.parametrize(
    ("status", "arm", "service_management"),
    [
        (404, "JobCollectionNotFound", "ResourceNotFound"),
        (409, "Conflict", "ConflictError"),
        (503, "ServiceUnavailable", "ServerBusy"),
        (401, "AuthenticationFailed", "AuthenticationFailed"),
        (412, "PreconditionFailed", "PreconditionFailed"),
    ],
)
def test_arm_errors_take_service_managements_codes(
    status: int, arm: str, service_management: str
) -> None:
    # Given an ARM error answer; When it is turned into Service Management's
    answer = as_service_management_error(
        arm_error(status, arm, "why", {"WWW-Authenticate": "Bearer"})
    )
    # Then the status, message and headers are kept, and the code is MSDN's name for it
    error = ElementTree.fromstring(bytes(answer.body))
    assert answer.status_code == status
    assert error.findtext(f"{AZURE}Code") == service_management
    assert error.findtext(f"{AZURE}Message") == "why"
    assert answer.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("headers", "msdn"),
    [
        pytest.param({"content-type": "application/xml"}, True, id="an-xml-body"),
        pytest.param({"content-type": "text/xml; charset=utf-8"}, True, id="text-xml"),
        pytest.param(
            {"content-type": "application/json", "x-ms-version": "2013-06-01"},
            False,
            id="a-json-body-whatever-else",
        ),
        pytest.param({"accept": "application/xml"}, True, id="asks-for-xml"),
        pytest.param(
            {"accept": "application/json", "x-ms-version": "2013-06-01"},
            False,
            id="asks-for-json",
        ),
        pytest.param({"x-ms-version": "2013-06-01"}, True, id="only-x-ms-version"),
        pytest.param({"accept": "*/*"}, False, id="nothing-said"),
    ],
)
def test_a_seed_path_request_is_msdns_when_it_speaks_service_management(
    headers: dict[str, str], msdn: bool
) -> None:
    # Given a request's headers; When asked; Then the body, then Accept, then x-ms-version decide
    assert speaks_service_management(Headers(headers)) is msdn
