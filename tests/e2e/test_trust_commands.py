"""Management commands as an attacker would use them: paths, overwrites, secrets, imports.

ExportJobs and ImportJobs read and write only in the command folder
(``TAKT_DATA_DIR/exchange``); a Command job is checked when it is written, and the worker
runs it the way a schedule does (``run_action``). ImportJobs goes through the job service's
rules and refuses a bad document as a whole.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from scheduler.cli.main import cli
from scheduler.domain.models import (
    ActionType,
    JobCollection,
    JobErrorAction,
    JobProperties,
    JobState,
)
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.errors import ValidationFailed
from scheduler.service.jobs import JobService
from scheduler.settings import TaktSettings
from scheduler.store.jobs import JobStore
from scheduler.store.principals import (
    ADMIN_PRINCIPAL,
    Principal,
    PrincipalBook,
    Role,
    ensure_principal_key,
)
from tests.support.arm import API_VERSION, history, new_collection
from tests.support.helpers import ADMIN_TOKEN, wait_until
from tests.support.stack import Stack
from workers.context import WorkerContext
from workers.http_action import Outcome

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CID = "sub/rg/coll"
SECRET = "p4ss-w0rd-never-in-exports"


def http_job(**extra: Any) -> dict[str, Any]:
    return {
        "startTime": "2030-01-01T00:00:00Z",
        "action": {"type": "Http", "request": {"uri": "http://example.test/", "method": "GET"}},
        **extra,
    }


def secret_job() -> JobProperties:
    return JobProperties.model_validate(
        http_job(
            action={
                "type": "Http",
                "request": {
                    "uri": "http://example.test/",
                    "method": "GET",
                    "authentication": {"type": "Basic", "username": "u", "password": SECRET},
                },
            }
        )
    )


@pytest.fixture
def folder(settings: TaktSettings) -> Path:
    """The command folder, as docs/security.md names it."""
    return settings.data_dir / "exchange"


@pytest.fixture
def filled(store: JobStore) -> JobStore:
    """The administrator, a reader, and a collection with a job holding a password."""
    ensure_principal_key(store, ADMIN_PRINCIPAL, Role.ADMIN, ADMIN_TOKEN)
    PrincipalBook(store).add("rita", Role.READER)
    store.put_collection(CID, JobCollection(location="west"))
    store.put_job(f"{CID}/secret", secret_job(), owner=ADMIN_PRINCIPAL, next_fire_ms=None)
    store.put_job(
        f"{CID}/plain",
        JobProperties.model_validate(http_job()),
        owner=ADMIN_PRINCIPAL,
        next_fire_ms=None,
    )
    return store


@pytest.fixture
def worker(settings: TaktSettings) -> Iterator[WorkerContext]:
    ctx = WorkerContext(settings=settings, publish=lambda *_: None, send_task=lambda *_: None)
    yield ctx
    ctx.store.close()


def scheduled(ctx: WorkerContext, line: str) -> Outcome:
    """Run ``line`` as the worker runs a Command job's occurrence."""
    action = JobErrorAction(type=ActionType.COMMAND, command=line)
    return run_action_of(ctx, action)


def run_action_of(ctx: WorkerContext, action: JobErrorAction) -> Outcome:
    from workers.actions import run_action

    return run_action(ctx, action, f"{CID}/cmd", 0, "m0")


def manage(settings: TaktSettings, *args: str) -> Result:
    env = {
        "TAKT_REDIS_URL": settings.store_url,
        "TAKT_KEY_PREFIX": settings.key_prefix,
        "TAKT_DATA_DIR": str(settings.data_dir),
    }
    return CliRunner().invoke(cli, ["manage", *args], env=env)


def snapshot(store: JobStore) -> dict[str, tuple[str, Any]]:
    """Every key of this test's prefix with its type and value."""
    redis = store.redis
    found: dict[str, tuple[str, Any]] = {}
    for key in redis.scan_iter(match="{" + store.keys.prefix + "}:*"):
        kind = redis.type(key)
        readers = {
            "string": lambda k: redis.get(k),
            "hash": lambda k: redis.hgetall(k),
            "zset": lambda k: redis.zrange(k, 0, -1, withscores=True),
            "set": lambda k: sorted(redis.smembers(k)),
            "list": lambda k: redis.lrange(k, 0, -1),
            "stream": lambda k: redis.xrange(k),
        }
        found[key] = (kind, readers[kind](key))
    return found


def outside_file(tmp_path: Path) -> Path:
    """A file of someone else's, mode 644, that no command may touch."""
    victim = tmp_path / "outside" / "victim.conf"
    victim.parent.mkdir()
    victim.write_text("precious\n")
    victim.chmod(0o644)
    return victim


def untouched(victim: Path) -> bool:
    return victim.read_text() == "precious\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644


# Write time: a Command job naming a bad path is a 400 naming the field


@pytest.fixture
def service(filled: JobStore) -> JobService:
    """The job service, as the API (ARM, classic, console) calls it."""
    return JobService(filled, PrincipalBook(filled), lambda *_: None)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        pytest.param("ExportJobs --collection coll --to {outside}", "--to", id="absolute"),
        pytest.param("ExportJobs --collection coll --to ../x.json", "--to", id="dot-dot"),
        pytest.param(
            "ExportJobs --collection coll --to a/../../x.json", "--to", id="nested-dot-dot"
        ),
        pytest.param("ImportJobs --from /etc/passwd", "--from", id="import-absolute"),
        pytest.param("ImportJobs --from ../../admin-token", "--from", id="import-dot-dot"),
        pytest.param("ExportJobs --collection coll --to 'x\ty.json'", "--to", id="control-char"),
        pytest.param("ExportJobs --collection coll --to ''", "--to", id="empty"),
        pytest.param(
            "ExportJobs --collection coll --to x.json --include-secrets",
            "--include-secrets",
            id="secrets-flag",
        ),
    ],
)
def test_a_command_job_naming_a_bad_path_is_refused_at_write_time(
    service: JobService, filled: JobStore, tmp_path: Path, line: str, says: str
) -> None:
    # Given a Command job whose line names a path outside the command folder
    victim = outside_file(tmp_path)
    properties = JobProperties.model_validate(
        {**http_job(), "action": {"type": "Command", "command": line.format(outside=victim)}}
    )
    ref = JobRef(CollectionRef.from_cid(CID), "cmd")

    # When it is written, then it is refused naming the field and the argument
    with pytest.raises(ValidationFailed) as refused:
        service.put(ref, properties, Principal(ADMIN_PRINCIPAL, Role.ADMIN), NOW)
    assert refused.value.field == "properties.action.command"
    assert str(refused.value).startswith("properties.action.command: ")
    assert says in str(refused.value)
    assert "cmd" not in filled.job_names(CID)
    assert untouched(victim)


@pytest.mark.e2e
def test_the_api_answers_a_bad_command_path_with_a_400_naming_the_field(stack: Stack) -> None:
    collection = new_collection(stack.http)
    line = "ExportJobs --collection coll --to /etc/cron.d/takt"

    response = stack.http.put(
        f"{collection}/jobs/cmd",
        params=API_VERSION,
        json={"properties": {**http_job(), "action": {"type": "Command", "command": line}}},
    )

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["message"].startswith("properties.action.command: "), error
    assert "--to" in error["message"]
    assert stack.http.get(f"{collection}/jobs/cmd", params=API_VERSION).status_code == 404


# Run time: the folder, symlinks, overwrites, modes


def test_a_scheduled_export_to_an_absolute_path_touches_nothing(
    filled: JobStore, worker: WorkerContext, tmp_path: Path
) -> None:
    # Given a file outside the command folder (a job stored before the rule, say)
    victim = outside_file(tmp_path)

    # When a scheduled export names it
    outcome = scheduled(worker, f"ExportJobs --collection coll --to {victim}")

    # Then the run fails with a message, and the file keeps its content and mode
    assert not outcome.succeeded
    assert "--to" in outcome.message
    assert untouched(victim)


def test_exports_are_new_0600_files_in_a_0700_folder(
    filled: JobStore, worker: WorkerContext, folder: Path
) -> None:
    # When a scheduled export runs under a permissive umask
    old = os.umask(0)
    try:
        outcome = scheduled(worker, "ExportJobs --collection coll --to backup.json")
    finally:
        os.umask(old)

    # Then the file is in the command folder, private, and holds the jobs
    assert outcome.succeeded, outcome.message
    written = folder / "backup.json"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert {job["name"] for job in json.loads(written.read_text())["jobs"]} == {"plain", "secret"}
    assert [p.name for p in folder.iterdir()] == ["backup.json"]  # no temporary file left


def test_an_export_never_overwrites(filled: JobStore, worker: WorkerContext, folder: Path) -> None:
    # Given an export already in the folder
    assert scheduled(worker, "ExportJobs --collection coll --to backup.json").succeeded
    first = (folder / "backup.json").read_text()
    filled.delete_job(f"{CID}/plain")

    # When another export names the same file
    outcome = scheduled(worker, "ExportJobs --collection coll --to backup.json")

    # Then it fails saying so, and the first export is intact
    assert not outcome.succeeded
    assert "backup.json exists" in outcome.message
    assert (folder / "backup.json").read_text() == first
    assert [p.name for p in folder.iterdir()] == ["backup.json"]


def test_an_export_name_may_carry_the_run_time_so_a_daily_export_never_collides(
    filled: JobStore, worker: WorkerContext, folder: Path
) -> None:
    outcome = scheduled(worker, "ExportJobs --collection coll --to 'coll-{now}.json'")

    assert outcome.succeeded, outcome.message
    [written] = folder.iterdir()
    assert written.name.startswith("coll-2")
    assert written.name.endswith("Z.json")


@pytest.mark.parametrize("how", ["file-link", "folder-link"])
def test_an_export_through_a_symlink_that_leaves_the_folder_is_refused(
    filled: JobStore, worker: WorkerContext, folder: Path, tmp_path: Path, how: str
) -> None:
    # Given a link in the command folder that points outside it
    victim = outside_file(tmp_path)
    folder.mkdir(mode=0o700)
    if how == "file-link":
        (folder / "link.json").symlink_to(victim)
        line = "ExportJobs --collection coll --to link.json"
    else:
        (folder / "sub").symlink_to(victim.parent, target_is_directory=True)
        line = "ExportJobs --collection coll --to sub/new.json"

    # When an export names it
    outcome = scheduled(worker, line)

    # Then nothing is written outside, and the message does not show where the folder is
    assert not outcome.succeeded
    assert untouched(victim)
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim.conf"]
    assert str(tmp_path) not in outcome.message


def test_an_import_through_a_symlink_that_leaves_the_folder_is_refused(
    filled: JobStore, worker: WorkerContext, folder: Path, tmp_path: Path
) -> None:
    # Given a valid export document outside the folder, and a link to it inside
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(document([{"name": "planted", "properties": http_job()}])))
    folder.mkdir(mode=0o700)
    (folder / "in.json").symlink_to(outside)
    before = snapshot(filled)

    # When it is imported
    outcome = scheduled(worker, "ImportJobs --from in.json")

    # Then it is refused and nothing changed
    assert not outcome.succeeded
    assert "command folder" in outcome.message
    assert snapshot(filled) == before


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("ImportJobs --from missing.json", "missing.json: no such file in the command folder"),
        ("ImportJobs --from pipe", "pipe: not a regular file in the command folder"),
        (
            "ExportJobs --collection coll --to nowhere/x.json",
            "nowhere/x.json: no such folder in the command folder",
        ),
    ],
    ids=["missing-file", "fifo", "missing-folder"],
)
def test_a_run_time_file_problem_is_a_message_not_a_traceback(
    filled: JobStore, worker: WorkerContext, folder: Path, tmp_path: Path, line: str, says: str
) -> None:
    # Given a command folder holding a FIFO (reading one would wait for a writer forever)
    folder.mkdir(mode=0o700)
    os.mkfifo(folder / "pipe")

    outcome = scheduled(worker, line)

    assert not outcome.succeeded
    assert says in outcome.message
    assert str(tmp_path) not in outcome.message


# Secrets: out of every export, except an administrator's explicit CLI flag


def test_a_scheduled_export_leaves_secrets_out(
    filled: JobStore, worker: WorkerContext, folder: Path
) -> None:
    outcome = scheduled(worker, "ExportJobs --collection coll --to backup.json")

    assert outcome.succeeded, outcome.message
    text = (folder / "backup.json").read_text()
    assert SECRET not in text
    assert '"username": "u"' in text


def test_only_the_cli_flag_exports_secrets(
    filled: JobStore, settings: TaktSettings, folder: Path
) -> None:
    # When an administrator exports from the CLI, without and then with the flag
    plain = manage(settings, "ExportJobs --collection coll --to plain.json")
    full = manage(
        settings, "--include-secrets", "ExportJobs", "--collection", "coll", "--to", "full.json"
    )

    # Then only the flagged export holds the password, and it is private too
    assert plain.exit_code == 0, plain.output
    assert full.exit_code == 0, full.output
    assert SECRET not in (folder / "plain.json").read_text()
    assert SECRET in (folder / "full.json").read_text()
    assert stat.S_IMODE((folder / "full.json").stat().st_mode) == 0o600


def test_the_secrets_flag_is_for_exports_only(filled: JobStore, settings: TaktSettings) -> None:
    result = manage(settings, "--include-secrets", "VerifyStore")

    assert result.exit_code == 1
    assert "--include-secrets" in result.output


# ImportJobs: the job service's rules, the whole document or nothing


def document(jobs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"collection": CID, "definition": {"location": "west"}, "jobs": jobs, **extra}


GOOD = {"name": "fine", "properties": http_job()}


def with_job(**properties: Any) -> dict[str, Any]:
    return document([GOOD, {"name": "bad", "properties": http_job(**properties)}])


BAD_DOCUMENTS = [
    pytest.param(
        {**document([GOOD]), "collection": "rt/rg/bad<img src=x onerror=alert(1)>"},
        "collection: ",
        id="collection-name",
    ),
    pytest.param(
        {**document([GOOD]), "definition": {"properties": {"state": "Deleted"}}},
        "definition.properties.state: ",
        id="deleted-collection",
    ),
    pytest.param(
        document([GOOD, {"name": "x<img>", "properties": http_job()}]),
        "jobs[1].name: ",
        id="job-name",
    ),
    pytest.param(document([GOOD, GOOD]), "jobs[1].name: ", id="same-name-twice"),
    pytest.param(with_job(owner="mallory"), "jobs[1].properties.owner: ", id="unknown-owner"),
    pytest.param(with_job(owner="rita"), "jobs[1].properties.owner: ", id="reader-owner"),
    pytest.param(
        with_job(action={"type": "Http", "request": {"uri": "ftp://x/", "method": "GET"}}),
        "jobs[1].properties.action.request",
        id="uri",
    ),
    pytest.param(
        with_job(action={"type": "Command", "command": "ExportJobs --collection c --to /etc/x"}),
        "jobs[1].properties.action.command: ",
        id="command-path",
    ),
    pytest.param(with_job(color="red"), "jobs[1].properties.color: ", id="unknown-field"),
    pytest.param(
        {
            **document([GOOD, {"name": "two", "properties": http_job()}]),
            "definition": {"properties": {"quota": {"maxJobCount": 3}}},
        },
        "jobs[1]: ",
        id="over-quota",  # the collection already holds two other jobs
    ),
    pytest.param({"collection": CID}, "jobs: ", id="no-jobs"),
]


@pytest.mark.parametrize(("bad", "field"), BAD_DOCUMENTS)
def test_an_invalid_import_is_refused_as_a_whole_and_changes_nothing(
    filled: JobStore, worker: WorkerContext, folder: Path, bad: dict[str, Any], field: str
) -> None:
    # Given an export file with one good job and one bad thing
    folder.mkdir(mode=0o700)
    (folder / "bad.json").write_text(json.dumps(bad))
    before = snapshot(filled)

    # When it is imported
    outcome = scheduled(worker, "ImportJobs --from bad.json")

    # Then the run fails naming the first bad field, and the store is as it was
    assert not outcome.succeeded
    prefix = "Command Action - ImportJobs --from bad.json: "
    assert outcome.message.startswith(prefix + field), outcome.message
    assert snapshot(filled) == before


def test_an_import_that_is_not_json_is_refused(
    filled: JobStore, worker: WorkerContext, folder: Path
) -> None:
    folder.mkdir(mode=0o700)
    (folder / "bad.json").write_text("[" * 100_000)
    before = snapshot(filled)

    outcome = scheduled(worker, "ImportJobs --from bad.json")

    assert not outcome.succeeded
    assert "bad.json: not JSON" in outcome.message
    assert snapshot(filled) == before


def test_a_valid_import_goes_through_the_job_service(
    filled: JobStore, worker: WorkerContext, folder: Path
) -> None:
    # Given a document for a new collection with a worker pool, two jobs of its own
    folder.mkdir(mode=0o700)
    new = "sub/rg/restored"
    jobs = [
        {
            "name": "hourly",
            "properties": http_job(recurrence={"frequency": "Hour", "interval": 1}),
        },
        {"name": "off", "properties": http_job(state="Disabled", owner=ADMIN_PRINCIPAL)},
    ]
    body = {"collection": new, "definition": {"properties": {"queue": "pool-a"}}, "jobs": jobs}
    (folder / "in.json").write_text(json.dumps(body))

    # When it is imported
    outcome = scheduled(worker, "ImportJobs --from in.json")

    # Then both jobs are stored as the API would store them
    assert outcome.succeeded, outcome.message
    assert filled.job_names(new) == ["hourly", "off"]
    hourly = filled.get_job(f"{new}/hourly")
    assert hourly.queue == "pool-a"
    assert hourly.state is JobState.ENABLED
    assert hourly.properties.status is not None
    assert hourly.properties.status.next_execution_time is not None
    assert filled.get_job(f"{new}/off").state is JobState.DISABLED


def test_an_export_with_secrets_round_trips_through_the_cli(
    filled: JobStore, settings: TaktSettings
) -> None:
    # Given a full export, and the collection's jobs deleted
    assert manage(settings, "--include-secrets", "ExportJobs --collection coll --to all.json")
    for name in filled.job_names(CID):
        filled.delete_job(f"{CID}/{name}")

    # When it is imported from the CLI
    result = manage(settings, "ImportJobs --from all.json")

    # Then the jobs are back with their password
    assert result.exit_code == 0, result.output
    assert filled.job_names(CID) == ["plain", "secret"]
    request = filled.get_job(f"{CID}/secret").properties.action.request
    assert request is not None
    assert request.authentication is not None
    assert request.authentication.password == SECRET


def test_a_masked_export_re_imported_over_its_jobs_keeps_their_credentials(
    filled: JobStore, worker: WorkerContext
) -> None:
    # Given a scheduled export of the collection: its password is masked
    assert scheduled(worker, "ExportJobs --collection coll --to masked.json").succeeded

    # When it is imported over the jobs it came from
    outcome = scheduled(worker, "ImportJobs --from masked.json")

    # Then each credential sent back as read keeps the stored value (the secret rule)
    assert outcome.succeeded, outcome.message
    request = filled.get_job(f"{CID}/secret").properties.action.request
    assert request is not None
    assert request.authentication is not None
    assert request.authentication.password == SECRET


def test_a_masked_credential_with_nothing_to_keep_refuses_the_import(
    filled: JobStore, worker: WorkerContext, folder: Path
) -> None:
    # Given an export whose job had an Authorization header, read masked
    filled.put_job(
        f"{CID}/bearer",
        JobProperties.model_validate(
            http_job(
                action={
                    "type": "Http",
                    "request": {
                        "uri": "http://example.test/",
                        "method": "GET",
                        "headers": {"Authorization": f"Bearer {SECRET}"},
                    },
                }
            )
        ),
        owner=ADMIN_PRINCIPAL,
        next_fire_ms=None,
    )
    assert scheduled(worker, "ExportJobs --collection coll --to masked.json").succeeded
    exported = json.loads((folder / "masked.json").read_text())
    assert SECRET not in json.dumps(exported)

    # When it is imported into a collection where that job does not exist
    (folder / "elsewhere.json").write_text(json.dumps({**exported, "collection": "sub/rg/new"}))
    before = snapshot(filled)
    outcome = scheduled(worker, "ImportJobs --from elsewhere.json")

    # Then the whole import is refused naming the header: a mask is never stored as a value
    assert not outcome.succeeded
    assert "jobs[0].properties.action.request.headers" in outcome.message, outcome.message
    assert snapshot(filled) == before


@pytest.mark.e2e
def test_a_command_that_fails_at_run_time_leaves_a_failed_history_entry(stack: Stack) -> None:
    # Given a Command job whose file is not in the command folder
    collection = new_collection(stack.http)
    line = "ImportJobs --from no-such-export.json"
    body = {"properties": {**http_job(), "action": {"type": "Command", "command": line}}}
    assert stack.http.put(f"{collection}/jobs/cmd", params=API_VERSION, json=body).is_success

    # When it runs
    assert stack.http.post(f"{collection}/jobs/cmd/run", params=API_VERSION).status_code == 200

    # Then its history says it failed and why, without the folder's absolute path
    [entry] = wait_until(lambda: history(stack.http, collection, "cmd"), timeout=10)
    assert entry["properties"]["status"] == "Failed"
    message = entry["properties"]["message"]
    assert "no-such-export.json: no such file in the command folder" in message
    assert str(stack.log_dir) not in message
