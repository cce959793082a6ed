"""Takt's configuration, read from ``TAKT_*`` variables: the only module that touches the
process environment.

Each service's entry point (``takt up``, ``takt api``, the Celery app, the beat) builds one
:class:`TaktSettings` and passes it down; the CLI's commands over the API (``takt jobs``,
``collections``, ``principals``) build a :class:`ClientSettings`, the little a client
reads. Both refuse a ``TAKT_*`` variable that neither knows and explain a bad value the
same way. Nothing reads the environment at import time. Beside the settings, Flower's
login variables and the environment ``takt up`` hands its children are read here too.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scheduler.data_folder import running_store_url
from scheduler.errors import ConfigurationError

ENV_PREFIX = "TAKT_"
#: Link-local addresses and the cloud metadata services (AWS's IPv6 one included).
DEFAULT_DENY_NETWORKS = "169.254.0.0/16,fe80::/10,fd00:ec2::254/128"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: A worker's lease on an attempt outlives the action's timeout by this much.
LEASE_MARGIN_S = 5.0
#: Variables under this prefix belong to the test suite (``TAKT_TEST_REDIS_URL``),
#: not to a running service, so the unknown-variable check leaves them alone.
_RESERVED_PREFIXES = ("TAKT_TEST_",)
#: The schemes of a store found through Redis Sentinel (as scheduler.store.connections reads).
_SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel", "valkey+sentinel")


class _SharedSettings(BaseSettings):
    """What the services and the client both read: where the API listens, the bootstrap
    administrator key and the data folder it is generated into."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bootstrap administrator key; generated into the data dir if unset.",
    )
    data_dir: Path = Path(".takt")

    @property
    def admin_token_path(self) -> Path:
        """Where a generated administrator key is kept (mode 0600)."""
        return self.data_dir / "admin-token"


class TaktSettings(_SharedSettings):
    """Every setting of a Takt service (API, beat, worker, Flower, ``takt up``); see the
    README's configuration table."""

    redis_url: str | None = Field(
        default=None, description="Job store. Unset: `takt up` starts an embedded Valkey."
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker; the Redis URL if unset."
    )
    flower_host: str = "127.0.0.1"
    flower_port: int = Field(default=5555, ge=0, le=65535)
    flower_max_tasks: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Tasks Flower keeps in memory (its --max_tasks; oldest dropped first).",
    )
    key_prefix: str = Field(default="takt", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    http_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    http_timeout_max_s: float = Field(
        default=600.0, gt=0, le=3600, description="Longest per-job request timeout allowed."
    )
    oauth_authority: str = Field(
        default="https://login.microsoftonline.com",
        description="Token endpoint base of ActiveDirectoryOAuth actions.",
    )
    storage_queue_endpoint: str = Field(
        default="https://{account}.queue.core.windows.net",
        description="Queue service of StorageQueue actions; {account} is the storage account.",
    )
    service_bus_endpoint: str = Field(
        default="https://{namespace}.servicebus.windows.net",
        description="Service Bus of ServiceBusQueue/Topic actions; {namespace} is the namespace.",
    )
    broker_retry_max_s: float = Field(
        default=300.0,
        ge=0,
        le=3600,
        description="Retries up to this far off wait in the broker; longer ones in the due set.",
    )
    redelivery_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="An unacknowledged task is delivered again after this long (Redis broker).",
    )
    worker_processes: int = Field(
        default_factory=lambda: cores(),
        ge=1,
        le=64,
        description="Worker processes `takt up` starts (default: one per core; each runs "
        "its attempts on 64 threads).",
    )
    task_events: bool = Field(
        default=True,
        description="Workers send task events: Flower's task view needs them. Three per "
        "task, sent together every 0.1 s; about 0.03 ms of a worker's CPU per task "
        "(docs/benchmarks.md).",
    )
    beat_batch_size: int = Field(default=500, ge=1, le=10_000)
    beat_claim_ahead: bool = Field(
        default=True,
        description="A beat sends the claim of its next batch before it publishes this "
        "one, so Redis claims while the beat publishes (false: one step at a time, each "
        "beat waiting on Redis).",
    )
    beat_max_interval_s: float = Field(default=5.0, gt=0, le=300)
    log_level: str = "INFO"
    log_format: str = Field(
        default="text",
        description="text: Python's lines; json: one JSON object a line (API, beat, worker).",
    )
    metrics: bool = Field(
        default=True,
        description="Count Prometheus metrics in the API, beats and workers (GET /metrics).",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that may read /metrics (besides the admin key).",
    )
    metrics_push_interval_s: float = Field(
        default=5.0,
        ge=0.5,
        le=60,
        description="How often each process pushes its metrics into the store for /metrics.",
    )
    tracing: bool = Field(
        default=False,
        description="OpenTelemetry traces (the otel extra), exported over OTLP/HTTP where "
        "OTEL_EXPORTER_OTLP_ENDPOINT says (docs/operations.md, Traces).",
    )
    # Trust: input bounds, outbound policy, sessions, the embedded store (docs/security.md).
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=16 * 1024,
        le=64 * 1024 * 1024,
        description="Largest request body the API reads (413 above it).",
    )
    max_json_depth: int = Field(
        default=32, ge=8, le=256, description="Deepest nesting of a JSON body the API parses."
    )
    action_deny_networks: str = Field(
        default=DEFAULT_DENY_NETWORKS,
        description="CIDRs that Http/Https, StorageQueue and token calls may not reach.",
    )
    action_allow_networks: str = Field(
        default="",
        description="If set, the only CIDRs such calls may reach (deny still applies).",
    )
    public_url: str | None = Field(
        default=None,
        description="Base of every absolute URL the API writes (nextLink); relative if unset.",
    )
    trusted_proxies: str = Field(
        default="",
        description="CIDRs whose X-Forwarded-For/-Proto the API believes.",
    )
    redis_socket_timeout_s: float = Field(
        default=5.0, gt=0, le=300, description="Longest wait on one Redis call."
    )
    redis_min_replicas: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Replicas each job and collection write waits for (WAIT) before the "
        "API confirms it; unset: 1 with a Sentinel URL, 0 otherwise.",
    )
    redis_replica_timeout_ms: int = Field(
        default=1000,
        ge=1,
        le=60_000,
        description="How long a write waits for its replicas before the API answers 503.",
    )
    valkey_maxmemory: str = Field(
        default="1gb",
        pattern=r"^[1-9][0-9]*(b|kb|mb|gb)?$",
        description="maxmemory of the embedded Valkey (noeviction refuses writes past it).",
    )

    @field_validator("storage_queue_endpoint")
    @classmethod
    def _names_the_account(cls, value: str) -> str:
        if "{account}" not in value:
            raise ValueError(
                "must contain {account}, e.g. https://{account}.queue.core.windows.net"
            )
        return value.rstrip("/")

    @field_validator("service_bus_endpoint")
    @classmethod
    def _names_the_namespace(cls, value: str) -> str:
        if "{namespace}" not in value:
            raise ValueError(
                "must contain {namespace}, e.g. https://{namespace}.servicebus.windows.net"
            )
        return value.rstrip("/")

    @field_validator("action_deny_networks", "action_allow_networks", "trusted_proxies")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        _parse_networks(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value):
            raise ValueError(
                "must be an absolute http(s) URL without query, e.g. https://takt.example.com"
            )
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value.lower() not in {"text", "json"}:
            raise ValueError("expected text or json")
        return value.lower()

    @model_validator(mode="after")
    def _redelivery_after_the_longest_wait(self) -> TaktSettings:
        if self.http_timeout_s > self.http_timeout_max_s:
            raise ValueError(
                f"TAKT_HTTP_TIMEOUT_S ({self.http_timeout_s:g}) must not exceed "
                f"TAKT_HTTP_TIMEOUT_MAX_S ({self.http_timeout_max_s:g})"
            )
        needed = self.http_timeout_max_s + self.broker_retry_max_s + LEASE_MARGIN_S
        if self.redelivery_timeout_s <= needed:
            raise ValueError(
                f"TAKT_REDELIVERY_TIMEOUT_S ({self.redelivery_timeout_s:g}) must exceed "
                f"TAKT_HTTP_TIMEOUT_MAX_S + TAKT_BROKER_RETRY_MAX_S + {LEASE_MARGIN_S:g} "
                f"({needed:g}): a task still running or waiting for its retry would be "
                "delivered twice"
            )
        return self

    @property
    def store_url(self) -> str:
        """The Redis URL of the job store: ``TAKT_REDIS_URL``, else the embedded store of
        the ``takt up`` running on ``TAKT_DATA_DIR``; an error when there is neither."""
        if self.redis_url is not None:
            return self.redis_url
        running = running_store_url(self.data_dir)
        if running is None:
            raise ConfigurationError(
                "TAKT_REDIS_URL is not set and no `takt up` runs on TAKT_DATA_DIR "
                f"({self.data_dir}): point it at Redis/Valkey, or start `takt up`, "
                "which starts an embedded server"
            )
        return running

    @model_validator(mode="after")
    def _replicas_answer_before_the_socket_times_out(self) -> TaktSettings:
        too_long = self.redis_replica_timeout_ms >= self.redis_socket_timeout_s * 1000
        if too_long and self.min_replicas > 0:
            raise ValueError(
                f"TAKT_REDIS_REPLICA_TIMEOUT_MS ({self.redis_replica_timeout_ms}) must be "
                f"less than TAKT_REDIS_SOCKET_TIMEOUT_S ({self.redis_socket_timeout_s:g} s): "
                "a write waiting for its replicas would time out as if the store did not "
                "answer"
            )
        return self

    @property
    def min_replicas(self) -> int:
        """The replicas each job and collection write waits for: ``TAKT_REDIS_MIN_REPLICAS``,
        else 1 behind Sentinel (a failover promotes a replica, and a write only the old
        primary had is lost) and 0 on one server (it has no replica to wait for).

        The URL is :attr:`store_url`'s (``takt up --ha`` records a Sentinel one), but
        without a store this is 0 rather than an error."""
        if self.redis_min_replicas is not None:
            return self.redis_min_replicas
        url = self.redis_url if self.redis_url is not None else running_store_url(self.data_dir)
        if url is None:
            return 0
        scheme, separator, _ = url.partition("://")
        return int(bool(separator) and scheme.lower() in _SENTINEL_SCHEMES)

    @property
    def celery_broker_url(self) -> str:
        """The broker: ``TAKT_BROKER_URL``, else the job store's Redis."""
        return self.broker_url or self.store_url

    @property
    def deny_networks(self) -> tuple[Network, ...]:
        """``TAKT_ACTION_DENY_NETWORKS``, parsed."""
        return _parse_networks(self.action_deny_networks)

    @property
    def allow_networks(self) -> tuple[Network, ...]:
        """``TAKT_ACTION_ALLOW_NETWORKS``, parsed (empty: every network not denied)."""
        return _parse_networks(self.action_allow_networks)

    @property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        """``TAKT_TRUSTED_PROXIES``, parsed."""
        return _parse_networks(self.trusted_proxies)


class ClientSettings(_SharedSettings):
    """What the CLI's commands over the API read: which API, with which key, and the
    subscription and resource group of their paths (their flags override each)."""

    api_url: str | None = Field(
        default=None,
        description="API the CLI talks to; http://TAKT_API_HOST:TAKT_API_PORT if unset.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="Key the CLI sends; the admin token (env or file) if unset."
    )
    subscription: str = Field(default="default", description="CLI's default subscription id.")
    resource_group: str = Field(default="default", description="CLI's default resource group.")

    @property
    def client_url(self) -> str:
        """The API the CLI talks to."""
        return self.api_url or f"http://{self.api_host}:{self.api_port}"


def cores() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def _parse_networks(value: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (or single addresses) as networks; a bad one is a ValueError."""
    networks = []
    for part in (piece.strip() for piece in value.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not a CIDR such as 10.0.0.0/8 or fe80::/10") from None
    return tuple(networks)


_Settings = TypeVar("_Settings", bound=_SharedSettings)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> TaktSettings:
    """Build a service's settings from ``environ`` (the process environment by default).

    Raises:
        ConfigurationError: a ``TAKT_`` variable that no setting knows (with the closest
            known name), or a bad value (naming the variable, the value and what is expected).
    """
    return _load(TaktSettings, environ, overrides)


def load_client_settings(
    environ: Mapping[str, str] | None = None, **overrides: Any
) -> ClientSettings:
    """Build the client's settings from ``environ`` (the process environment by default).

    Only the variables a client reads are validated; the services' are known names, so
    the environment of a ``takt up`` machine serves its CLI too.

    Raises:
        ConfigurationError: as :func:`load_settings`.
    """
    return _load(ClientSettings, environ, overrides)


def _load(
    kind: type[_Settings], environ: Mapping[str, str] | None, overrides: Mapping[str, Any]
) -> _Settings:
    env = os.environ if environ is None else environ
    unknown = sorted(
        key
        for key in env
        if key.startswith(ENV_PREFIX)
        and key not in _KNOWN_VARIABLES
        and not key.startswith(_RESERVED_PREFIXES)
    )
    if unknown:
        raise ConfigurationError("; ".join(_unknown(key) for key in unknown))
    values = {name: env[_variable(name)] for name in kind.model_fields if _variable(name) in env}
    values.update(overrides)
    try:
        # Pass values explicitly so `environ` (not os.environ) is the only source.
        return kind.model_validate(values)
    except ValidationError as exc:
        explained = (_explain(kind, error) for error in exc.errors())
        raise ConfigurationError("; ".join(explained)) from exc


# -- the process environment beyond the settings -----------------------------------------
#
# Flower reads its own variables, and `takt up` hands its whole environment down to the
# processes it starts: read (and, for Flower, written) here, so no other module touches it.

#: Flower's variables that Takt reads: the login it gives Flower, and Flower's open API,
#: which it refuses (:func:`scheduler.cli.flower.flower_login`).
_FLOWER_VARIABLES = ("FLOWER_BASIC_AUTH", "FLOWER_UNAUTHENTICATED_API")


def flower_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Those of Flower's login variables that are set in ``environ`` (the process
    environment by default)."""
    env = os.environ if environ is None else environ
    return {name: env[name] for name in _FLOWER_VARIABLES if name in env}


def export_flower_login(credentials: str) -> None:
    """Give Flower, run in this process, its login (``user:password``) the way it reads
    it: the environment, not ``--basic-auth`` (a command line is readable by every local
    user)."""
    os.environ["FLOWER_BASIC_AUTH"] = credentials


def child_environment(*, redis_url: str | None = None) -> dict[str, str]:
    """The environment of a process ``takt up`` starts: this process's own (PATH, the
    ``TAKT_*`` settings, Celery's and Flower's variables), with ``TAKT_REDIS_URL`` set to
    ``redis_url`` when given (the embedded store's, password included: never printed)."""
    env = dict(os.environ)
    if redis_url is not None:
        env[_variable("redis_url")] = redis_url
    return env


# -- what a refused setting says ---------------------------------------------------------
#
# The reader set an environment variable, so each message names that variable, the value
# as given and what would be accepted, on one line; never pydantic's text, which names the
# internal field (`api_port`) and links to its documentation.

#: What a setting with a pattern accepts, in words (the pattern itself helps nobody).
_PATTERN_WORDS = {
    "key_prefix": "1 to 64 letters, digits, '_', '.' or '-'",
    "valkey_maxmemory": "a size such as 512mb or 1gb (b, kb, mb or gb; not 0)",
}


def _variable(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


#: Every ``TAKT_*`` variable a service or the client reads: any other is a typo.
_KNOWN_VARIABLES = tuple(
    sorted(
        {_variable(name) for kind in (TaktSettings, ClientSettings) for name in kind.model_fields}
    )
)


def _unknown(key: str) -> str:
    close = difflib.get_close_matches(key, _KNOWN_VARIABLES, n=1)
    if close:
        return f"unknown setting {key}: did you mean {close[0]}?"
    return f"unknown setting {key}: no setting has that name (see the README's Configuration)"


def _explain(kind: type[_SharedSettings], error: Mapping[str, Any]) -> str:
    """One refused value as ``TAKT_X='value': expected ...``."""
    location = error.get("loc") or ()
    if not location:  # a rule across settings: its words name the variables
        return str(error["msg"]).removeprefix("Value error, ")
    if location[0] not in kind.model_fields:
        return f"unknown setting {_variable(str(location[0]))}"
    name = str(location[0])
    field = kind.model_fields[name]
    shown = "******" if "SecretStr" in repr(field.annotation) else repr(error.get("input"))
    shown = shown if len(shown) <= 80 else f"{shown[:76]}...{shown[-1]}"
    if error.get("type") == "value_error":  # a validator of ours: its words are the rule
        rule = str(error["msg"]).removeprefix("Value error, ")
    else:
        rule = f"expected {_expected(name, field.annotation, field.metadata)}"
    return f"{_variable(name)}={shown}: {rule}"


def _expected(name: str, annotation: Any, metadata: list[Any]) -> str:
    """What a field accepts, from its type and its constraints."""
    if name in _PATTERN_WORDS:
        return _PATTERN_WORDS[name]
    bounds = {
        kind: getattr(item, kind)
        for item in metadata
        for kind in ("ge", "gt", "le", "lt")
        if getattr(item, kind, None) is not None
    }
    if annotation is bool:
        return "true or false"
    optional = [arg for arg in get_args(annotation) if arg is not type(None)]
    if len(optional) == 1:  # `int | None`: unset is None, a value set is an int
        annotation = optional[0]
    noun = {int: "an integer", float: "a number"}.get(annotation, "a text value")
    if "ge" in bounds and "le" in bounds:
        return f"{noun} from {bounds['ge']:g} to {bounds['le']:g}"
    words = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}
    limits = [f"{words[kind]} {value:g}" for kind, value in bounds.items()]
    return f"{noun} {' and '.join(limits)}" if limits else noun
