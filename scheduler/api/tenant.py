"""Routes above any subscription (Takt extension): every job collection Takt holds.

ARM lists collections per subscription or per resource group; an operator of one Takt
wants them all at once (``takt collections list --all``), whatever subscription a client
put them in. The answer has the shape of ARM's lists (``{"value": [...]}``), each
collection's ``id`` naming its subscription and resource group.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from scheduler.api.deps import ApiVersion, Collections, Reader
from scheduler.api.envelopes import collection_envelope
from scheduler.api.schemas import JobCollectionList
from scheduler.domain.refs import CollectionRef

__all__ = ["router"]

router = APIRouter(tags=["Takt extensions"])


@router.get(
    "/providers/Microsoft.Scheduler/jobCollections",
    response_model=None,
    responses={200: {"model": JobCollectionList}},
)
def list_every_collection(collections: Collections, _: Reader, __: ApiVersion) -> dict[str, Any]:
    """Every job collection, in every subscription and resource group (readers may list)."""
    records = collections.list_all(None)
    return {"value": [collection_envelope(CollectionRef.from_cid(r.cid), r) for r in records]}
