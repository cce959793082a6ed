"""Management commands and retention: run with an injected clock against a real store."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from scheduler.cli.main import cli
from scheduler.clock import to_ms
from scheduler.domain.models import (
    JobCollection,
    JobProperties,
    JobState,
)
from scheduler.errors import ValidationFailed
from scheduler.service.builtin_jobs import SYSTEM_COLLECTION
from scheduler.service.management import parse_command_line, run_command_line
from scheduler.settings import TaktSettings
from scheduler.store.jobs import JobStore
from scheduler.store.principals import ADMIN_PRINCIPAL, Role, ensure_principal_key
from tests.support.arm import API_VERSION, history, new_collection, put_job
from tests.support.attempts import record_completed
from tests.support.helpers import ADMIN_TOKEN, wait_until
from tests.support.stack import Stack

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CID = "sub/rg/coll"


def job(**extra: object) -> JobProperties:
    return JobProperties.model_validate(
        {
            "action": {"type": "Http", "request": {"uri": "http://example.test/", "method": "GET"}},
            **extra,
        }
    )


@pytest.fixture
def filled(store: JobStore) -> JobStore:
    ensure_principal_key(store, ADMIN_PRINCIPAL, Role.ADMIN, ADMIN_TOKEN)
    store.put_collection(CID, JobCollection())
    for name in ("old", "recent", "running"):
        store.put_job(f"{CID}/{name}", job(), owner="admin", next_fire_ms=None)
    record_completed(store, f"{CID}/old", NOW - timedelta(days=90), final=JobState.COMPLETED)
    record_completed(store, f"{CID}/recent", NOW - timedelta(days=10), final=JobState.FAULTED)
    for days in (100, 61, 59, 1):
        record_completed(store, f"{CID}/running", NOW - timedelta(days=days))
    return store


def test_purge_history_drops_what_is_older_than_the_cutoff(
    filled: JobStore, settings: TaktSettings
) -> None:
    result = run_command_line(filled, "PurgeHistory --older-than P60D", NOW, settings)
    assert result.ok
    assert "dropped 3 history entries" in result.report
    kept = [e.entry.end_time for e in filled.history(f"{CID}/running")]
    assert kept == [NOW - timedelta(days=1), NOW - timedelta(days=59)]


def test_delete_finished_jobs_deletes_only_those_finished_long_ago(
    filled: JobStore, settings: TaktSettings
) -> None:
    result = run_command_line(filled, "DeleteFinishedJobs --older-than P60D", NOW, settings)
    assert result.ok
    assert "deleted 1 jobs" in result.report
    assert filled.job_names(CID) == ["recent", "running"]
    # a clock 60 days later takes the job that finished 10 days ago too
    run_command_line(filled, "DeleteFinishedJobs", NOW + timedelta(days=51), settings)
    assert filled.job_names(CID) == ["running"]


def test_export_then_import_round_trips_with_secrets_in_a_private_file(
    filled: JobStore, settings: TaktSettings
) -> None:
    secret = job(
        action={
            "type": "Http",
            "request": {
                "uri": "http://example.test/",
                "method": "GET",
                "authentication": {"type": "Basic", "username": "u", "password": "p4ss"},
            },
        }
    )
    filled.put_job(f"{CID}/secret", secret, owner="admin", next_fire_ms=None)
    line = "ExportJobs --collection coll --to export.json"
    assert run_command_line(filled, line, NOW, settings, include_secrets=True).ok
    path = settings.data_dir / "exchange" / "export.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for name in filled.job_names(CID):
        filled.delete_job(f"{CID}/{name}")

    result = run_command_line(filled, "ImportJobs --from export.json", NOW, settings)

    assert result.ok
    assert filled.job_names(CID) == ["old", "recent", "running", "secret"]
    auth = filled.get_job(f"{CID}/secret").properties.action.request.authentication  # type: ignore[union-attr]
    assert auth is not None
    assert auth.password == "p4ss"
    # finished jobs come back disabled, not final, so they can be looked at and re-enabled
    assert filled.get_job(f"{CID}/old").state is JobState.DISABLED


def test_verify_store_reports_broken_invariants(filled: JobStore, settings: TaktSettings) -> None:
    assert run_command_line(filled, "VerifyStore", NOW, settings).ok
    filled.redis.zadd(filled.keys.due, {f"{CID}/ghost": 1})
    filled.put_job(f"{CID}/lost", job(), owner="admin", next_fire_ms=to_ms(NOW))
    filled.redis.zrem(filled.keys.due, f"{CID}/lost")

    result = run_command_line(filled, "VerifyStore", NOW, settings)

    assert not result.ok
    assert "2 problem(s)" in result.report
    assert "ghost" in result.report
    assert "lost is Enabled with a next execution time but is not scheduled" in result.report


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Reboot", "unknown command 'Reboot'; the commands are DeleteFinishedJobs"),
        ("PurgeHistory --older-than soon", "usage: PurgeHistory [--older-than DURATION]"),
        ("ExportJobs --collection c", "the following arguments are required: --to"),
        ("PurgeHistory --everything", "unrecognized arguments: --everything"),
        ('ImportJobs --from "unclosed', "No closing quotation"),
    ],
    ids=["unknown", "bad-duration", "missing-argument", "unknown-flag", "bad-quoting"],
)
def test_bad_command_lines_are_refused_with_the_usage(line: str, expected: str) -> None:
    with pytest.raises(ValidationFailed, match=expected):
        parse_command_line(line)


def test_takt_manage_runs_a_command_from_the_cli(filled: JobStore, settings: TaktSettings) -> None:
    env = {"TAKT_REDIS_URL": settings.store_url, "TAKT_KEY_PREFIX": settings.key_prefix}
    result = CliRunner().invoke(cli, ["manage", "VerifyStore"], env=env)
    assert result.exit_code == 0, result.output
    assert "consistent" in result.output
    bad = CliRunner().invoke(cli, ["manage", "Reboot"], env=env)
    assert bad.exit_code == 1
    assert "unknown command" in bad.output


@pytest.mark.e2e
def test_a_command_job_is_validated_at_create_time_and_runs(stack: Stack) -> None:
    collection = new_collection(stack.http)
    bad = stack.http.put(
        f"{collection}/jobs/bad",
        params=API_VERSION,
        json={
            "properties": {
                "startTime": "2099-01-01T00:00:00Z",
                "action": {"type": "Command", "command": "PurgeHistory --older-than tomorrow"},
            }
        },
    )
    assert bad.status_code == 400
    assert "usage: PurgeHistory" in bad.json()["error"]["message"]

    put_job(
        stack.http,
        collection,
        "purge",
        {
            "properties": {
                "action": {"type": "Command", "command": "PurgeHistory --older-than P3650D"}
            }
        },
    )

    entries = wait_until(lambda: history(stack.http, collection, "purge"), timeout=5)
    assert entries[0]["properties"]["status"] == "Completed", entries
    assert "dropped 0 history entries" in entries[0]["properties"]["message"]


@pytest.mark.e2e
def test_the_retention_jobs_are_built_in_and_visible(stack: Stack) -> None:
    ref = SYSTEM_COLLECTION
    path = (
        f"/subscriptions/{ref.subscription}/resourceGroups/{ref.resource_group}"
        f"/providers/Microsoft.Scheduler/jobCollections/{ref.name}/jobs"
    )
    jobs = {
        j["name"].split("/")[1]: j["properties"]
        for j in stack.http.get(path, params=API_VERSION).json()["value"]
    }
    assert jobs["purge-history"]["action"]["command"] == "PurgeHistory --older-than P60D"
    assert jobs["delete-finished-jobs"]["action"]["command"] == (
        "DeleteFinishedJobs --older-than P60D"
    )
    assert jobs["purge-history"]["status"]["nextExecutionTime"].endswith("T03:00:00Z")
    assert jobs["delete-finished-jobs"]["status"]["nextExecutionTime"].endswith("T03:30:00Z")


def _lines(tmp_path: Path) -> dict[str, str]:
    export = f"{tmp_path.name}.json"  # a name in the command folder, this test's own
    return {
        "PurgeHistory": "PurgeHistory --older-than P3650D",
        "DeleteFinishedJobs": "DeleteFinishedJobs --older-than P3650D",
        "ExportJobs": f"ExportJobs --collection coll --to {export}",
        "ImportJobs": f"ImportJobs --from {export}",
        "VerifyStore": "VerifyStore",
    }


@pytest.mark.parametrize(
    "command", ["PurgeHistory", "DeleteFinishedJobs", "ExportJobs", "ImportJobs", "VerifyStore"]
)
def test_every_command_runs_from_the_cli(
    filled: JobStore, settings: TaktSettings, tmp_path: Path, command: str
) -> None:
    env = {
        "TAKT_REDIS_URL": settings.store_url,
        "TAKT_KEY_PREFIX": settings.key_prefix,
        "TAKT_DATA_DIR": str(settings.data_dir),
    }
    lines = _lines(tmp_path)
    if command == "ImportJobs":
        CliRunner().invoke(cli, ["manage", lines["ExportJobs"]], env=env)
        # finished jobs cannot be replaced (the API's rule), so import into a clean collection
        for name in filled.job_names(CID):
            filled.delete_job(f"{CID}/{name}")
    result = CliRunner().invoke(cli, ["manage", lines[command]], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip()


@pytest.mark.e2e
@pytest.mark.parametrize(
    "command", ["PurgeHistory", "DeleteFinishedJobs", "ExportJobs", "ImportJobs", "VerifyStore"]
)
def test_every_command_runs_as_a_job(stack: Stack, tmp_path: Path, command: str) -> None:
    # Given a Command job far in the future (ExportJobs/ImportJobs use a collection "coll"
    # and a file of the stack's command folder)
    collection = new_collection(stack.http)
    coll = collection.rsplit("/", 1)[0] + "/coll"
    stack.http.put(coll, params=API_VERSION, json={"location": "l"})
    lines = {**_lines(tmp_path)}
    lines["ExportJobs"] = lines["ExportJobs"].replace(
        "--collection coll", "--collection sub1/rg1/coll"
    )
    if command == "ImportJobs":
        folder = stack.log_dir / "data" / "exchange"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (folder / f"{tmp_path.name}.json").write_text(
            '{"collection": "sub1/rg1/imported", "definition": {}, "jobs": []}'
        )
    put_job(
        stack.http,
        collection,
        "cmd",
        {
            "properties": {
                "startTime": "2099-01-01T00:00:00Z",
                "action": {"type": "Command", "command": lines[command]},
            }
        },
    )

    # When it is started by hand
    assert stack.http.post(f"{collection}/jobs/cmd/run", params=API_VERSION).status_code == 200

    # Then it ran and reported (VerifyStore may find other tests' work in flight)
    [entry] = wait_until(lambda: history(stack.http, collection, "cmd"), timeout=10)
    message = entry["properties"]["message"]
    assert message.startswith(f"Command Action - {lines[command]}: ")
    if command != "VerifyStore":
        assert entry["properties"]["status"] == "Completed", message
