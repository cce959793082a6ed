"""Job creation's arguments solved by hand, the API's hot route.

FastAPI's generic solver rebuilt the PUT job route's arguments through seven dependencies
and parameters per request (about a quarter of a creation's CPU time in py-spy). The
route stays one FastAPI route with its typed signature, which is what /openapi.json
documents; :class:`HandSolvedRoute` only replaces how its arguments are found: the same
checks, in FastAPI's order (the key, then write permission, then the api-version, then
the body), raising the same errors, so the ARM error bodies are unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError

from scheduler.api.deps import api_version, bearer, principal, writer
from scheduler.api.media import is_json, refusal
from scheduler.api.schemas import JobDefinitionBody

__all__ = ["HandSolvedRoute"]


class HandSolvedRoute(APIRoute):
    """The PUT job route: ``put_job(sub, rg, coll, job, body, jobs, principal, __)``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            response: Response = await endpoint(**await _put_job_arguments(request))
            return response

        return handle


async def _put_job_arguments(request: Request) -> dict[str, Any]:
    caller = await writer(await principal(request, await bearer(request)))
    version = await api_version(request.query_params.get("api-version"))
    path = request.path_params
    return {
        "sub": path["subscriptionId"],
        "rg": path["resourceGroupName"],
        "coll": path["jobCollectionName"],
        "job": path["jobName"],
        "body": await _body(request),
        "jobs": request.app.state.jobs,
        "principal": caller,
        "__": version,
    }


async def _body(request: Request) -> JobDefinitionBody:
    """The body as FastAPI reads a required JSON model, errors located under ``body``,
    under any JSON media type (:mod:`scheduler.api.media`; another one is a 415)."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    content_type = request.headers.get("content-type")
    if not is_json(content_type):
        raise refusal(content_type)
    try:
        content: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        error: dict[str, Any] = {"type": "json_invalid", "loc": ("body", exc.pos)}
        error.update(msg="JSON decode error", input={}, ctx={"error": exc.msg})
        raise RequestValidationError([error]) from exc
    except ValueError as exc:  # not UTF-8 (or -16/-32) text
        raise HTTPException(400, "There was an error parsing the body") from exc
    try:
        return JobDefinitionBody.model_validate(content)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from exc
