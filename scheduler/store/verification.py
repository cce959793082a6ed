"""VerifyStore: the invariants the store keeps, checked and reported (a maintenance scan)."""

from __future__ import annotations

from typing import Any, cast

import redis

from scheduler.errors import SchemaTooNew
from scheduler.store.codecs import job_of
from scheduler.store.jobs import JobStore

__all__ = ["verify_store"]


def _due(store: JobStore) -> dict[str, float]:
    rows = cast(list[Any], store.redis.zrange(store.keys.due, 0, -1, withscores=True))
    return {str(member): float(score) for member, score in rows}


def _claimed(store: JobStore) -> set[str]:
    """Jobs a beat holds right now (claimed, not yet put back)."""
    try:
        entries = cast(list[Any], store.redis.xrange(store.keys.claims))
    except redis.ResponseError:  # no stream yet
        return set()
    return {job_of(str(member)) for _, fields in entries for member in fields}


def verify_store(store: JobStore) -> list[str]:
    """Every broken invariant, one line each (empty when the store is consistent)."""
    problems: list[str] = []
    due = _due(store)
    claimed = _claimed(store)
    known: set[str] = set()
    for cid in store.collection_ids(""):
        for name in store.job_names(cid):
            jid = f"{cid}/{name}"
            known.add(jid)
            problems += _check_job(store, jid, due, claimed)
    for member in due:
        if job_of(member) not in known:
            problems.append(f"due set holds {member!r}, which is not a job of any collection")
    for finished in cast(list[Any], store.redis.zrange(store.keys.finished, 0, -1)):
        if str(finished) not in known:
            problems.append(f"finished index holds {str(finished)!r}, which is not a job")
    return problems


def _check_job(store: JobStore, jid: str, due: dict[str, float], claimed: set[str]) -> list[str]:
    try:
        record = store.get_job(jid)
    except SchemaTooNew as exc:
        return [f"{jid}: {exc}"]
    except LookupError:
        return [f"{jid} is listed in its collection but has no definition"]
    status = record.properties.status
    next_time = status.next_execution_time if status else None
    scheduled = jid in due
    if record.state.value != "Enabled" and scheduled:
        return [f"{jid} is {record.state.value} but sits in the due set"]
    waiting = record.state.value == "Enabled" and next_time is not None
    if waiting and not scheduled and jid not in claimed:
        return [f"{jid} is Enabled with a next execution time but is not scheduled"]
    return []
