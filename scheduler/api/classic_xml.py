"""The XML of the classic job collection API, as MSDN documents it: ``Resource`` with
``IntrinsicSettings`` (``Plan``, ``Quota`` with ``MaxJobCount`` and ``MaxRecurrence``) in,
``Resource`` with its ``CloudServiceSettings``, ``ETag``, ``Name`` and ``OperationStatus`` out.

Input is bounded before it is parsed (:data:`MAX_XML_BYTES`), and parsed with the standard
library's expat with every DTD refused: no entity can be declared, so none is expanded (the
billion laughs, external entities). Elements are in Azure's namespace
(``http://schemas.microsoft.com/windowsazure``; the ``https`` spelling of MSDN's newer
pages, or none, is read too); any element MSDN does not document is refused by name, as an
unknown JSON member is.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, NoReturn
from xml.etree import ElementTree
from xml.parsers import expat
from xml.sax.saxutils import escape

from scheduler.domain.models import JobCollection, SkuName
from scheduler.errors import LimitExceeded, ValidationFailed

__all__ = ["MAX_XML_BYTES", "etag", "parse_resource", "render_resource"]

#: A collection's XML is a few hundred bytes; anything far larger is not one.
MAX_XML_BYTES = 64 * 1024

_NAMESPACES = (
    "http://schemas.microsoft.com/windowsazure",
    "https://schemas.microsoft.com/windowsazure",
)
_AZURE = _NAMESPACES[0]
_INSTANCE = "http://www.w3.org/2001/XMLSchema-instance"
_CHILDREN = {
    "Resource": {"IntrinsicSettings"},
    "IntrinsicSettings": {"Plan", "Quota"},
    "Quota": {"MaxJobCount", "MaxRecurrence"},
    "MaxRecurrence": {"Frequency", "Interval"},
}


def _refuse(message: str) -> NoReturn:
    raise ValidationFailed(f"body: {message}", field="body")


def _forbid_dtd(*_: Any) -> NoReturn:
    _refuse("a DTD (<!DOCTYPE>, <!ENTITY>) is not allowed")


def _parse(data: bytes) -> ElementTree.Element:
    if len(data) > MAX_XML_BYTES:
        raise LimitExceeded(
            f"body: the XML is {len(data):,} bytes; the limit is {MAX_XML_BYTES:,}", field="body"
        )
    # expat itself, not ElementTree's C parser, which does not let a DTD be refused.
    builder = ElementTree.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.StartDoctypeDeclHandler = _forbid_dtd
    parser.EntityDeclHandler = _forbid_dtd
    parser.ExternalEntityRefHandler = _forbid_dtd
    parser.StartElementHandler = lambda name, _attributes: builder.start(_tag(name), {})
    parser.EndElementHandler = lambda name: builder.end(_tag(name))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        _refuse(f"not well-formed XML ({exc})")
    return builder.close()


def _tag(name: str) -> str:
    """expat's ``namespace}local`` as ElementTree's ``{namespace}local``."""
    return "{" + name if "}" in name else name


def _local(element: ElementTree.Element) -> str:
    namespace, _, name = (
        element.tag[1:].partition("}") if element.tag.startswith("{") else ("", "", element.tag)
    )
    if namespace and namespace not in _NAMESPACES:
        _refuse(f"<{name}> is in namespace {namespace!r}, not {_AZURE!r}")
    return name


def _children(element: ElementTree.Element, path: str) -> dict[str, ElementTree.Element]:
    allowed = _CHILDREN[path.rpartition("/")[2]]
    found: dict[str, ElementTree.Element] = {}
    for child in element:
        name = _local(child)
        if name not in allowed:
            _refuse(f"{path}/{name} is not a known element (expected {', '.join(sorted(allowed))})")
        if name in found:
            _refuse(f"{path}/{name} appears twice")
        found[name] = child
    return found


def _text(element: ElementTree.Element, path: str) -> str:
    if len(element):
        _refuse(f"{path} holds elements; it takes text")
    return (element.text or "").strip()


def _integer(element: ElementTree.Element, path: str) -> int:
    text = _text(element, path)
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        _refuse(f"{path} must be a whole number, not {text[:32]!r}")
    return int(text)


def parse_resource(data: bytes) -> dict[str, Any]:
    """The ``properties`` (wire form: ``sku``, ``quota``) an XML ``Resource`` body sets;
    the model validates them next, as an ARM body's."""
    root = _parse(data)
    if _local(root) != "Resource":
        _refuse(f"the root element is <{_local(root)}>, not <Resource>")
    settings = _children(root, "Resource").get("IntrinsicSettings")
    if settings is None:
        return {}
    found = _children(settings, "Resource/IntrinsicSettings")
    properties: dict[str, Any] = {}
    if "Plan" in found:
        plan = _text(found["Plan"], "IntrinsicSettings/Plan")
        try:
            properties["sku"] = {"name": SkuName(plan).value}
        except ValueError:
            known = ", ".join(member.value for member in SkuName)
            _refuse(f"IntrinsicSettings/Plan {plan[:32]!r} is not one of {known}")
    if "Quota" in found:
        properties["quota"] = _quota(found["Quota"])
    return properties


def _quota(element: ElementTree.Element) -> dict[str, Any]:
    path = "IntrinsicSettings/Quota"
    found = _children(element, path)
    quota: dict[str, Any] = {}
    if "MaxJobCount" in found:
        quota["maxJobCount"] = _integer(found["MaxJobCount"], f"{path}/MaxJobCount")
    if "MaxRecurrence" in found:
        where = f"{path}/MaxRecurrence"
        parts = _children(found["MaxRecurrence"], where)
        recurrence: dict[str, Any] = {}
        if "Frequency" in parts:
            recurrence["frequency"] = _text(parts["Frequency"], f"{where}/Frequency")
        if "Interval" in parts:
            recurrence["interval"] = _integer(parts["Interval"], f"{where}/Interval")
        quota["maxRecurrence"] = recurrence
    return quota


def etag(collection: JobCollection) -> str:
    """The collection's entity tag: a UUID-shaped digest of what is stored, so it changes
    whenever the collection does (Azure's were UUIDs)."""
    digest = hashlib.sha256(collection.model_dump_json(by_alias=True).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def render_resource(name: str, collection: JobCollection) -> bytes:
    """The ``Resource`` a Get Job Collection answers, in MSDN's order of elements."""
    properties = collection.properties
    settings = ""
    if properties is not None and properties.sku is not None and properties.sku.name is not None:
        settings += f"<Plan>{properties.sku.name.value}</Plan>"
    if properties is not None and properties.quota is not None:
        settings += _render_quota(properties.quota.to_wire())
    intrinsic = (
        f"<IntrinsicSettings>{settings}</IntrinsicSettings>" if settings else "<IntrinsicSettings/>"
    )
    text = (
        f'<Resource xmlns="{_AZURE}" xmlns:i="{_INSTANCE}">'
        f"<CloudServiceSettings><GeoRegion>{escape(collection.location or '')}</GeoRegion>"
        "</CloudServiceSettings>"
        f"<ETag>{etag(collection)}</ETag>"
        f"{intrinsic}"
        f"<Name>{escape(name)}</Name>"
        "<OperationStatus><Error><HttpCode>200</HttpCode><Message>OK</Message></Error>"
        "<Result>Succeeded</Result></OperationStatus>"
        "</Resource>"
    )
    return text.encode()


def _render_quota(quota: dict[str, Any]) -> str:
    inner = ""
    if "maxJobCount" in quota:
        inner += f"<MaxJobCount>{quota['maxJobCount']}</MaxJobCount>"
    recurrence = quota.get("maxRecurrence") or {}
    if recurrence:
        parts = "".join(
            f"<{tag}>{recurrence[key]}</{tag}>"
            for key, tag in (("frequency", "Frequency"), ("interval", "Interval"))
            if key in recurrence
        )
        inner += f"<MaxRecurrence>{parts}</MaxRecurrence>"
    return f"<Quota>{inner}</Quota>"
