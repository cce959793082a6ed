"""Pydantic models of Azure Scheduler's 2016-03-01 wire format, plus Takt's extensions.

Wire names are Azure's camelCase; enum values are accepted in any casing and written in
Azure's. Unknown fields are refused with a message naming them. Timestamps must carry a
UTC offset; a bare date (Azure's own examples write ``"endTime": "2012-11-04"``) means
00:00 UTC of that day. Timestamps are kept to the millisecond.

Credentials (secret fields, credential headers, URI passwords, credential query values:
the rule is :mod:`scheduler.domain.credentials`) are accepted on write and hidden by
:func:`without_secrets` before anything leaves the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Self

import isodate
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from scheduler.domain.bounds import (
    MAX_COUNT,
    check_argument,
    check_duration,
    check_header,
    check_http_uri,
    check_method,
    check_text,
    check_timestamp,
)
from scheduler.domain.credentials import mask as mask_credentials
from scheduler.recurrence import canonical_recurrence, validate_recurrence

__all__ = [
    "QUEUE_PATTERN",
    "SAS_KEY_NAME_PATTERN",
    "SERVICE_BUS_RESERVED_HEADERS",
    "STORED",
    "ActionType",
    "AuthenticationType",
    "CeleryTask",
    "CollectionState",
    "ConcurrencyPolicy",
    "HistoryEntry",
    "HttpAuthentication",
    "HttpRequest",
    "JobAction",
    "JobCollection",
    "JobCollectionProperties",
    "JobCollectionQuota",
    "JobErrorAction",
    "JobExecutionStatus",
    "JobHistoryActionName",
    "JobMaxRecurrence",
    "JobProperties",
    "JobRecurrence",
    "JobRecurrenceSchedule",
    "JobState",
    "JobStatus",
    "MissedRunPolicy",
    "MonthlyOccurrence",
    "RecurrenceFrequency",
    "RetryPolicy",
    "RetryType",
    "ServiceBusAuthentication",
    "ServiceBusAuthenticationType",
    "ServiceBusBrokeredMessageProperties",
    "ServiceBusMessage",
    "ServiceBusTransportType",
    "Sku",
    "SkuName",
    "StorageQueueMessage",
    "WeekDay",
    "WireModel",
    "describe_validation_error",
    "without_secrets",
]


#: A worker pool's queue name (extension): `takt worker -Q NAME` serves it.
QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class AzureEnum(StrEnum):
    """A string enum that accepts its values in any casing (``http``, ``Http``, ``HTTP``)."""

    @classmethod
    def _missing_(cls, value: object) -> AzureEnum | None:
        if isinstance(value, str):
            folded = value.strip().casefold()
            for member in cls:
                if member.value.casefold() == folded:
                    return member
        return None


class ActionType(AzureEnum):
    HTTP = "Http"
    HTTPS = "Https"
    STORAGE_QUEUE = "StorageQueue"
    SERVICE_BUS_QUEUE = "ServiceBusQueue"
    SERVICE_BUS_TOPIC = "ServiceBusTopic"
    CELERY = "Celery"  # extension: send a Celery task to a queue on the broker
    COMMAND = "Command"  # extension: run a built-in management command (MailStore)


class AuthenticationType(AzureEnum):
    NOT_SPECIFIED = "NotSpecified"
    CLIENT_CERTIFICATE = "ClientCertificate"
    ACTIVE_DIRECTORY_OAUTH = "ActiveDirectoryOAuth"
    BASIC = "Basic"


class JobState(AzureEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    FAULTED = "Faulted"
    COMPLETED = "Completed"

    @property
    def is_final(self) -> bool:
        """Completed and Faulted jobs can be deleted but never updated or run."""
        return self in (JobState.FAULTED, JobState.COMPLETED)


class RecurrenceFrequency(AzureEnum):
    SECOND = "Second"  # extension: fast tests and short intervals, bounded by quotas
    MINUTE = "Minute"
    HOUR = "Hour"
    DAY = "Day"
    WEEK = "Week"
    MONTH = "Month"
    YEAR = "Year"  # the seed document lists it; the 2016-03-01 spec omits it


class MissedRunPolicy(AzureEnum):
    """What a job does about occurrences that came due while no beat ran (extension)."""

    RUN_ONCE = "RunOnce"  # one catch-up run, then the normal schedule (the default)
    SKIP = "Skip"  # none: the normal schedule resumes
    RUN_ALL = "RunAll"  # every missed occurrence, oldest first


class ConcurrencyPolicy(AzureEnum):
    """What a job does when an occurrence comes due while the previous one runs (extension)."""

    ALLOW = "Allow"  # both run (the default)
    FORBID = "Forbid"  # the new one is skipped and recorded as Postponed
    REPLACE = "Replace"  # the running one is cancelled and the new one runs


class WeekDay(AzureEnum):
    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    SUNDAY = "Sunday"


class RetryType(AzureEnum):
    NONE = "None"
    FIXED = "Fixed"


class JobExecutionStatus(AzureEnum):
    COMPLETED = "Completed"
    FAILED = "Failed"
    POSTPONED = "Postponed"


class JobHistoryActionName(AzureEnum):
    MAIN_ACTION = "MainAction"
    ERROR_ACTION = "ErrorAction"


class SkuName(AzureEnum):
    FREE = "Free"
    STANDARD = "Standard"
    P10_PREMIUM = "P10Premium"
    P20_PREMIUM = "P20Premium"


class CollectionState(AzureEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    SUSPENDED = "Suspended"
    DELETED = "Deleted"


def _parse_timestamp(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not an ISO 8601 date-time") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a date-time needs a UTC offset (for example 2026-01-01T10:00:00Z)")
        # The store keeps epoch milliseconds; finer digits would not survive a round trip.
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


def _format_timestamp(value: datetime) -> str:
    if value.utcoffset() == timedelta(0):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


#: An aware datetime on the wire (ISO 8601 with an offset; ``Z`` for UTC).
Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_timestamp),
    PlainSerializer(_format_timestamp, when_used="json"),
]

#: A :data:`Timestamp` a client writes: also within the range of :mod:`scheduler.domain.bounds`
#: (what the server computes, occurrences and status, may lie beyond it).
WrittenTimestamp = Annotated[Timestamp, AfterValidator(check_timestamp)]

_DAYS_PER_MONTH = 30  # ISO durations in months/years are converted at 30 / 365 days


def _parse_duration(value: Any) -> Any:
    if isinstance(value, str):
        try:
            parsed = isodate.parse_duration(value.strip())
            if isinstance(parsed, isodate.Duration):
                days = float(parsed.years) * 365 + float(parsed.months) * _DAYS_PER_MONTH
                return parsed.tdelta + timedelta(days=days)
        except (isodate.ISO8601Error, ValueError) as exc:
            raise ValueError(f"{value!r} is not an ISO 8601 duration (for example PT1M)") from exc
        except OverflowError as exc:
            raise ValueError(f"{value!r} is out of range: from PT0S to P2Y (730 days)") from exc
        return parsed
    return value


def _format_duration(value: timedelta) -> str:
    return str(isodate.duration_isoformat(value))


#: A duration on the wire: ISO 8601 (``PT30S``, ``P1D``, ``P18M``).
Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_duration),
    PlainSerializer(_format_duration, when_used="json"),
]

#: A :data:`Duration` a client writes: also within the range of :mod:`scheduler.domain.bounds`
#: (the beat reads stored ones as :data:`Duration`, whatever an older version accepted).
WrittenDuration = Annotated[Duration, AfterValidator(check_duration)]


#: The validation context of a record read back from the store: it was checked when it
#: was written (and Redis holds only UTF-8), so checks of raw text are skipped.
STORED: dict[str, bool] = {"stored": True}


class WireModel(BaseModel):
    """Base of every wire model: camelCase names, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        ser_json_timedelta="iso8601",
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict in Azure's wire form, without null members."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class HttpAuthentication(WireModel):
    """One model for the three kinds Azure knows; the validator checks each kind's fields."""

    type: AuthenticationType
    # Basic
    username: str | None = None
    password: str | None = None
    # ClientCertificate
    pfx: str | None = None
    certificate_thumbprint: str | None = None
    certificate_expiration_date: WrittenTimestamp | None = None
    certificate_subject_name: str | None = None
    # ActiveDirectoryOAuth
    secret: str | None = None
    tenant: str | None = None
    audience: str | None = None
    client_id: str | None = None

    _FIELDS_BY_TYPE = {
        AuthenticationType.BASIC: ({"username", "password"}, {"username"}),
        AuthenticationType.CLIENT_CERTIFICATE: (
            {
                "pfx",
                "password",
                "certificate_thumbprint",
                "certificate_expiration_date",
                "certificate_subject_name",
            },
            set(),
        ),
        AuthenticationType.ACTIVE_DIRECTORY_OAUTH: (
            {"secret", "tenant", "audience", "client_id"},
            {"tenant", "audience", "client_id"},
        ),
        AuthenticationType.NOT_SPECIFIED: (set(), set()),
    }

    @model_validator(mode="after")
    def _fields_fit_type(self) -> Self:
        allowed, required = self._FIELDS_BY_TYPE[self.type]
        given = {name for name in type(self).model_fields if name != "type"}
        given = {name for name in given if getattr(self, name) is not None}
        if stray := sorted(given - allowed):
            raise ValueError(
                f"{', '.join(to_camel(s) for s in stray)} not allowed with type {self.type.value}"
            )
        if missing := sorted(required - given):
            raise ValueError(
                f"{', '.join(to_camel(m) for m in missing)} required with type {self.type.value}"
            )
        return self


class HttpRequest(WireModel):
    uri: Annotated[str, AfterValidator(check_http_uri)] = Field(min_length=1)
    method: Annotated[str, AfterValidator(check_method)] = Field(min_length=1, max_length=16)
    body: str | None = None
    headers: dict[str, str] | None = None
    authentication: HttpAuthentication | None = None
    # extension: this request's timeout (ISO 8601), instead of TAKT_HTTP_TIMEOUT_S
    timeout: WrittenDuration | None = None

    @field_validator("headers")
    @classmethod
    def _headers_are_sendable(cls, headers: dict[str, str] | None) -> dict[str, str] | None:
        for name, value in (headers or {}).items():
            check_header(name, value)
        return headers


class StorageQueueMessage(WireModel):
    # Both become part of the queue's URL: nothing that could change its host or path.
    # (Azure's stricter rules are checked when the message is sent, naming them.)
    storage_account: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_-]+$")
    queue_name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_-]+$")
    sas_token: str | None = None
    message: str


class ServiceBusAuthenticationType(AzureEnum):
    NOT_SPECIFIED = "NotSpecified"
    SHARED_ACCESS_KEY = "SharedAccessKey"


class ServiceBusTransportType(AzureEnum):
    """Stored and returned as given; Takt always sends over Service Bus's HTTPS interface."""

    NOT_SPECIFIED = "NotSpecified"
    NET_MESSAGING = "NetMessaging"
    AMQP = "AMQP"


#: Azure's rule for a shared access policy name: letters, digits, ``.``, ``-``, ``_``.
SAS_KEY_NAME_PATTERN = r"[A-Za-z0-9._-]{1,256}"
#: Azure's rule for a namespace: 6-50 letters, digits and hyphens, starting with a letter
#: and ending with a letter or digit.
SERVICE_BUS_NAMESPACE_PATTERN = r"[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]"
#: A queue name or topic path: Azure's letters, digits, ``.``, ``-``, ``_``, in segments
#: joined by ``/``, each starting and ending with a letter or digit (at most 260
#: characters). It becomes part of the URL, so nothing that changes a path (``..``, ``//``).
_SEGMENT = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
SERVICE_BUS_ENTITY_PATTERN = rf"{_SEGMENT}(?:/{_SEGMENT})*"


def _matching(pattern: str, rule: str) -> AfterValidator:
    """A check that a value matches ``pattern``, refusing it with ``rule`` (Azure's words)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value[:64]!r} does not fit: {rule}")
        return value

    return AfterValidator(check)


_KEY_NAME = _matching(
    SAS_KEY_NAME_PATTERN, "1 to 256 letters, digits, periods, hyphens and underscores"
)
_NAMESPACE = _matching(
    SERVICE_BUS_NAMESPACE_PATTERN,
    "6 to 50 letters, digits and hyphens, starting with a letter, ending with a letter or digit",
)
_ENTITY = _matching(
    SERVICE_BUS_ENTITY_PATTERN,
    "at most 260 letters, digits, periods, hyphens and underscores, in segments joined by "
    "'/', each starting and ending with a letter or digit",
)


class ServiceBusAuthentication(WireModel):
    # The key itself is required to send; "" (as a read shows it) keeps the stored one,
    # so the service checks it is there once stored credentials are put back.
    sas_key: str | None = Field(default=None, max_length=256)
    sas_key_name: Annotated[str, _KEY_NAME] | None = None
    type: ServiceBusAuthenticationType | None = None


class ServiceBusBrokeredMessageProperties(WireModel):
    """Azure's ``ServiceBusBrokeredMessageProperties``: sent in the ``BrokerProperties``
    header (``contentType`` as ``Content-Type``)."""

    content_type: str | None = Field(default=None, max_length=256)
    correlation_id: str | None = Field(default=None, max_length=128)
    force_persistence: bool | None = None
    label: str | None = Field(default=None, max_length=256)
    message_id: str | None = Field(default=None, max_length=128)
    partition_key: str | None = Field(default=None, max_length=128)
    reply_to: str | None = Field(default=None, max_length=256)
    reply_to_session_id: str | None = Field(default=None, max_length=128)
    scheduled_enqueue_time_utc: WrittenTimestamp | None = None
    session_id: str | None = Field(default=None, max_length=128)
    time_to_live: WrittenDuration | None = None
    to: str | None = Field(default=None, max_length=128)
    via_partition_key: str | None = Field(default=None, max_length=128)

    @field_validator("content_type")
    @classmethod
    def _sendable_content_type(cls, value: str | None) -> str | None:
        if value is not None:
            check_header("Content-Type", value)
        return value


#: Headers the Service Bus call sets itself: a custom property may not take their place.
SERVICE_BUS_RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "brokerproperties",
        "connection",
        "content-length",
        "content-type",
        "expect",
        "host",
        "transfer-encoding",
    }
)
_MAX_CUSTOM_PROPERTIES = 50


class ServiceBusMessage(WireModel):
    """Azure's ``ServiceBusQueueMessage`` / ``ServiceBusTopicMessage``: one message sent to
    a queue or a topic through Service Bus's REST interface (``workers.service_bus``)."""

    authentication: ServiceBusAuthentication | None = None
    brokered_message_properties: ServiceBusBrokeredMessageProperties | None = None
    custom_message_properties: dict[str, str] | None = None
    message: str | None = None
    namespace: Annotated[str, _NAMESPACE] | None = None
    transport_type: ServiceBusTransportType | None = None
    queue_name: Annotated[str, Field(max_length=260), _ENTITY] | None = None
    topic_path: Annotated[str, Field(max_length=260), _ENTITY] | None = None

    @field_validator("custom_message_properties")
    @classmethod
    def _sendable_properties(cls, properties: dict[str, str] | None) -> dict[str, str] | None:
        if properties is None:
            return None
        if len(properties) > _MAX_CUSTOM_PROPERTIES:
            raise ValueError(
                f"has {len(properties)} properties; the limit is {_MAX_CUSTOM_PROPERTIES}"
            )
        for name, value in properties.items():
            check_header(name, value)
            if name.lower() in SERVICE_BUS_RESERVED_HEADERS:
                raise ValueError(f"{name!r} is a header the Service Bus call sets itself")
        return properties

    @property
    def entity(self) -> str | None:
        """The queue name or the topic path, whichever is set."""
        return self.queue_name or self.topic_path


class CeleryTask(WireModel):
    """A Celery task to send (extension): for teams whose work already is Celery tasks.

    The arguments travel in the message and show in Flower: put no secret in them.
    """

    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][\w.:-]*$")
    args: Annotated[list[Any], AfterValidator(check_argument)] | None = None
    kwargs: Annotated[dict[str, Any], AfterValidator(check_argument)] | None = None
    queue: str | None = Field(default=None, min_length=1, max_length=256)


class RetryPolicy(WireModel):
    """Azure's fixed retry policy. An absent policy means no retries (the seed's reading)."""

    retry_type: RetryType = RetryType.NONE
    retry_interval: WrittenDuration | None = None
    retry_count: int | None = Field(default=None, ge=0, le=20)


class JobErrorAction(WireModel):
    """The action chained when the main action failed after all its retries."""

    type: ActionType
    request: HttpRequest | None = None
    queue_message: StorageQueueMessage | None = None
    service_bus_queue_message: ServiceBusMessage | None = None
    service_bus_topic_message: ServiceBusMessage | None = None
    celery_task: CeleryTask | None = None  # extension
    command: str | None = Field(default=None, min_length=1, max_length=2048)  # extension
    retry_policy: RetryPolicy | None = None

    @model_validator(mode="after")
    def _payload_fits_type(self) -> Self:
        needed = {
            ActionType.HTTP: "request",
            ActionType.HTTPS: "request",
            ActionType.STORAGE_QUEUE: "queue_message",
            ActionType.SERVICE_BUS_QUEUE: "service_bus_queue_message",
            ActionType.SERVICE_BUS_TOPIC: "service_bus_topic_message",
            ActionType.CELERY: "celery_task",
            ActionType.COMMAND: "command",
        }[self.type]
        if getattr(self, needed) is None:
            raise ValueError(
                f"{to_camel(needed)} is required for an action of type {self.type.value}"
            )
        https = self.type is ActionType.HTTPS and self.request is not None
        if https and not self.request.uri.lower().startswith("https://"):  # type: ignore[union-attr]
            raise ValueError("an Https action needs an https:// uri")
        return self


class JobAction(JobErrorAction):
    error_action: JobErrorAction | None = None


class MonthlyOccurrence(WireModel):
    day: WeekDay
    # Azure's spec spells this member with a capital O; lower case is accepted too.
    occurrence: int = Field(
        alias="Occurrence",
        validation_alias=AliasChoices("Occurrence", "occurrence"),
    )


class JobRecurrenceSchedule(WireModel):
    week_days: list[WeekDay] | None = None
    hours: list[int] | None = None
    minutes: list[int] | None = None
    month_days: list[int] | None = None
    monthly_occurrences: list[MonthlyOccurrence] | None = None
    months: list[int] | None = None  # extension: RFC 5545 BYMONTH


class JobRecurrence(WireModel):
    frequency: RecurrenceFrequency | None = None
    interval: int | None = None
    count: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    end_time: WrittenTimestamp | None = None
    schedule: JobRecurrenceSchedule | None = None
    time_zone: str | None = None  # extension: IANA zone name
    cron: str | None = None  # extension: 5-field cron, instead of frequency/schedule

    # Frozen, so the cached canonical JSON below cannot go stale by assignment.
    model_config = ConfigDict(**WireModel.model_config, frozen=True)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("canonical_json", None)  # computed again for the copy
        return copied

    @cached_property
    def canonical_json(self) -> str:
        """The rule as the engine's caches know it (sorted keys, wire names), computed
        once per instance: a write compiles its recurrence several times."""
        return canonical_recurrence(self.model_dump(by_alias=True, exclude_none=True, mode="json"))


class JobStatus(WireModel):
    execution_count: int = 0
    failure_count: int = 0
    faulted_count: int = 0
    last_execution_time: Timestamp | None = None
    next_execution_time: Timestamp | None = None


class JobProperties(WireModel):
    """The ``properties`` of an ARM job, and the flat job of the classic API."""

    start_time: WrittenTimestamp | None = None
    action: JobAction
    recurrence: JobRecurrence | None = None
    state: JobState | None = None
    status: JobStatus | None = None
    display_name: str | None = Field(default=None, max_length=256)  # extension
    owner: str | None = None  # extension: an administrator principal
    queue: str | None = Field(default=None, pattern=QUEUE_PATTERN)  # extension: worker pool
    missed_run_policy: MissedRunPolicy | None = None  # extension
    starting_deadline: WrittenDuration | None = None  # extension: older occurrences never run
    concurrency_policy: ConcurrencyPolicy | None = None  # extension

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, data: Any, info: ValidationInfo) -> Any:
        return data if info.context is STORED else check_text(data)

    @model_validator(mode="after")
    def _recurrence_is_computable(self) -> Self:
        if self.recurrence is not None:
            validate_recurrence(self.recurrence, self.start_time)
        return self


class HistoryEntry(WireModel):
    """One attempt of one action, Azure's ``JobHistoryDefinitionProperties``."""

    start_time: Timestamp
    end_time: Timestamp
    expected_execution_time: Timestamp
    action_name: JobHistoryActionName
    status: JobExecutionStatus
    message: str
    retry_count: int = 0
    repeat_count: int = 0


class Sku(WireModel):
    name: SkuName | None = None


class JobMaxRecurrence(WireModel):
    frequency: RecurrenceFrequency | None = None
    interval: int | None = Field(default=None, ge=1, le=MAX_COUNT)


class JobCollectionQuota(WireModel):
    max_job_count: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    max_job_occurrence: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    max_recurrence: JobMaxRecurrence | None = None


class JobCollectionProperties(WireModel):
    sku: Sku | None = None
    state: CollectionState | None = None
    quota: JobCollectionQuota | None = None
    queue: str | None = Field(default=None, pattern=QUEUE_PATTERN)  # extension: worker pool


class JobCollection(WireModel):
    """The writable part of an ARM job collection (the envelope adds id/type/name)."""

    location: str | None = None
    tags: dict[str, str] | None = None
    properties: JobCollectionProperties | None = None
    # Read-only envelope members a client may echo back; ignored on write.
    id: str | None = None
    type: str | None = None
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, data: Any, info: ValidationInfo) -> Any:
        return data if info.context is STORED else check_text(data)


def without_secrets(wire: Any) -> Any:
    """A copy of a wire dict with every credential hidden, as every read path shows it
    (the secret rule: :mod:`scheduler.domain.credentials`)."""
    return mask_credentials(wire)


_NAMED_FIELD = re.compile(r"^([A-Za-z][\w.\[\]]*): ")


def describe_validation_error(errors: Any, prefix: tuple[str | int, ...] = ()) -> str:
    """One line per problem, each starting with the dotted path of the field it names.

    ``errors`` is a pydantic :class:`ValidationError` or its ``errors()`` list.
    """
    items = errors.errors() if isinstance(errors, ValidationError) else errors
    messages = []
    for error in items:
        location = ".".join(
            str(part) for part in (*prefix, *error.get("loc", ())) if part != "body"
        )
        text = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            text = "is not a known field"
        if named := _NAMED_FIELD.match(text):
            # A model-level check that names its own field: one dotted path.
            location = ".".join(filter(None, (location, named.group(1))))
            text = text[named.end() :]
        messages.append(f"{location or 'body'}: {text}")
    return "; ".join(messages)
