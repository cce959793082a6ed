"""Job templates (Takt extension): the catalog the console's "Create job" list shows."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from scheduler.api.deps import ApiVersion, Collections, Reader
from scheduler.domain.models import without_secrets
from scheduler.domain.refs import CollectionRef
from scheduler.service.templates import TEMPLATES

__all__ = ["router"]

router = APIRouter(tags=["Takt extensions"])

_COLLECTION = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.Scheduler/jobCollections/{jobCollectionName}"
)


@router.get(_COLLECTION + "/templates")
def list_templates(
    sub: Annotated[str, Path(alias="subscriptionId")],
    rg: Annotated[str, Path(alias="resourceGroupName")],
    name: Annotated[str, Path(alias="jobCollectionName")],
    collections: Collections,
    _: Reader,
    __: ApiVersion,
) -> dict[str, Any]:
    """Every job template: its fields (with defaults) and the job properties they make.

    PUT ``{"properties": ...}`` of an entry (with its fields filled in) to create a job.
    """
    collections.get(CollectionRef(sub, rg, name))  # 404 for a collection that is not there
    return {"value": [without_secrets(template.to_wire()) for template in TEMPLATES]}
