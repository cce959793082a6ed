"""Where a collection or a job lives, and the rule for their names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from scheduler.errors import ValidationFailed

__all__ = ["CollectionRef", "JobRef", "checked_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def checked_name(kind: str, value: str) -> str:
    """``value`` if it is a valid resource name; a 400 naming ``kind`` otherwise."""
    if not _NAME.match(value):
        raise ValidationFailed(
            f"{kind} {value!r} is not a valid name: 1-100 letters, digits, '-', '_' or '.',"
            " starting with a letter or digit",
            field=kind,
        )
    return value


@dataclass(frozen=True, slots=True)
class CollectionRef:
    """A collection: subscription, resource group (or classic cloud service), name."""

    subscription: str
    resource_group: str
    name: str

    def __post_init__(self) -> None:
        checked_name("subscriptionId", self.subscription)
        checked_name("resourceGroupName", self.resource_group)
        checked_name("jobCollectionName", self.name)

    @property
    def cid(self) -> str:
        return f"{self.subscription}/{self.resource_group}/{self.name}"

    @classmethod
    def from_cid(cls, cid: str) -> CollectionRef:
        subscription, resource_group, name = cid.split("/")
        return cls(subscription, resource_group, name)


@dataclass(frozen=True, slots=True)
class JobRef:
    collection: CollectionRef
    name: str

    def __post_init__(self) -> None:
        checked_name("jobName", self.name)

    @property
    def jid(self) -> str:
        return f"{self.collection.cid}/{self.name}"
