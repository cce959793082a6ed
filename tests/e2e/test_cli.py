"""The operator CLI (``takt jobs|collections|principals``) against the test stack's real API."""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import click
import pytest
from click.testing import CliRunner, Result

from scheduler.cli import resources
from scheduler.cli.resources import collections, jobs, principals, register
from scheduler.client import SchedulerClient
from tests.support.helpers import HttpTarget, wait_until
from tests.support.stack import Stack
from tests.support.swagger import ValidatingTransport

LATER = {"startTime": "2030-01-01T09:00:00Z", "recurrence": {"frequency": "Day", "interval": 1}}


def http_action(uri: str) -> dict[str, Any]:
    return {"type": "Http", "request": {"uri": uri, "method": "GET"}}


def takt_group() -> click.Group:
    group = click.Group("takt")
    register(group)
    return group


def clean_env(**values: str) -> dict[str, str | None]:
    """No TAKT_* of the developer's shell leaks in; ``values`` are set."""
    env: dict[str, str | None] = {key: None for key in os.environ if key.startswith("TAKT_")}
    env.update({f"TAKT_{key.upper()}": value for key, value in values.items()})
    return env


def _validating_scheduler_client(*args: Any, **kwargs: Any) -> SchedulerClient:
    return SchedulerClient(*args, transport=ValidatingTransport(), **kwargs)


@dataclass
class Takt:
    """Runs ``takt ...`` in-process with the connection flags of one test's subscription."""

    flags: list[str]
    env: dict[str, str | None] = field(default_factory=clean_env)

    def __call__(self, *args: str, ok: bool = True) -> Result:
        # The CLI's client sends through the swagger check, as every client of the tests does.
        with mock.patch.object(resources, "SchedulerClient", _validating_scheduler_client):
            result = CliRunner().invoke(takt_group(), [*args, *self.flags], env=self.env)
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        else:
            assert result.exit_code == 1, result.output
            # a one-line message, never a traceback
            assert isinstance(result.exception, SystemExit)
            assert "Traceback" not in result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


def rows(output: str) -> list[list[str]]:
    """A table's lines split on runs of two or more spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


# Without a server


def test_register_adds_the_three_groups_and_the_hidden_alias() -> None:
    group = takt_group()

    assert {name: group.commands[name] for name in ("collections", "jobs", "principals")} == {
        "collections": collections,
        "jobs": jobs,
        "principals": principals,
    }
    alias = group.commands["users"]
    assert isinstance(alias, click.Group)
    assert alias.hidden
    assert alias.commands == principals.commands
    assert set(group.commands) == {"collections", "jobs", "principals", "users"}


def test_without_a_key_it_says_where_it_looked_and_makes_no_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        takt_group(), ["jobs", "show", "c", "j"], env=clean_env(data_dir=str(tmp_path))
    )

    assert result.exit_code == 1
    assert "no API key" in result.stderr
    assert str(tmp_path / "admin-token") in result.stderr
    assert not (tmp_path / "admin-token").exists()


def test_an_unreachable_api_is_one_line_on_stderr() -> None:
    takt = Takt(["--url", "http://127.0.0.1:9", "--key", "k"])

    result = takt("collections", "show", "c", ok=False)

    assert result.stderr.startswith("Error: could not reach the Takt API")
    assert result.stdout == ""


def test_a_job_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "job.json"
    bad.write_text("{not json")
    takt = Takt(["--url", "http://127.0.0.1:9", "--key", "k"])

    result = takt("jobs", "create", "c", "j", "-f", str(bad), ok=False)

    assert f"{bad}: not JSON" in result.stderr


# Against the real API


@pytest.fixture
def takt(stack: Stack) -> Takt:
    subscription = f"cli-{uuid.uuid4().hex[:8]}"
    return Takt(
        [
            "--url",
            stack.api_url,
            "--key",
            stack.token,
            "--subscription",
            subscription,
            "--resource-group",
            "rg",
        ]
    )


@pytest.fixture
def collection(takt: Takt) -> str:
    name = f"coll-{uuid.uuid4().hex[:8]}"
    takt("collections", "create", name)
    return name


def write_job(tmp_path: Path, document: dict[str, Any]) -> str:
    path = tmp_path / f"job-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(document))
    return str(path)


@pytest.mark.e2e
def test_collections_create_and_show_as_table_and_json(takt: Takt) -> None:
    created = takt("collections", "create", "billing", "--sku", "standard")
    shown = takt.json("collections", "show", "billing")

    assert rows(created.stdout) == [
        ["NAME", "LOCATION", "SKU", "STATE", "MAX JOBS"],
        ["billing", "local", "Standard", "Enabled", "-"],
    ]
    assert shown["name"] == "billing"
    assert shown["type"] == "Microsoft.Scheduler/jobCollections"
    assert shown["properties"]["sku"] == {"name": "Standard"}


@pytest.mark.e2e
@pytest.mark.parametrize("envelope", [True, False], ids=["envelope", "flat-properties"])
def test_jobs_create_from_a_file_then_show(
    takt: Takt, collection: str, tmp_path: Path, envelope: bool
) -> None:
    # Given a job file, with or without the ARM envelope
    properties = {"action": http_action("http://127.0.0.1:9/report"), **LATER}
    path = write_job(tmp_path, {"properties": properties} if envelope else properties)

    # When it is created and shown
    created = takt.json("jobs", "create", collection, "report", "-f", path)
    shown = takt("jobs", "show", collection, "report").stdout

    # Then the JSON is the API's envelope and the table says what matters
    assert created["name"] == f"{collection}/report"
    assert created["properties"]["status"]["nextExecutionTime"] == "2030-01-01T09:00:00Z"
    fields = dict(line.split(":  ", 1) for line in shown.splitlines())
    assert fields["job"].strip() == f"{collection}/report"
    assert fields["state"].strip() == "Enabled"
    assert fields["action"].strip() == "GET http://127.0.0.1:9/report"
    assert fields["next run"].strip() == "2030-01-01 09:00:00Z"
    assert json.loads(fields["recurrence"]) == {"frequency": "Day", "interval": 1}


@pytest.mark.e2e
def test_jobs_occurrences_lists_the_next_runs(takt: Takt, collection: str, tmp_path: Path) -> None:
    path = write_job(tmp_path, {"action": http_action("http://127.0.0.1:9/x"), **LATER})
    takt("jobs", "create", collection, "daily", "-f", path)

    table = takt("jobs", "occurrences", collection, "daily", "--count", "2").stdout
    wire = takt.json("jobs", "occurrences", collection, "daily", "--count", "2")

    assert table.splitlines() == ["2030-01-01 09:00:00Z", "2030-01-02 09:00:00Z"]
    assert wire == ["2030-01-01T09:00:00Z", "2030-01-02T09:00:00Z"]


@pytest.mark.e2e
def test_jobs_history_after_a_run(
    takt: Takt, collection: str, tmp_path: Path, target: HttpTarget
) -> None:
    # Given a job that runs at once
    path = write_job(tmp_path, {"action": http_action(f"{target.url}/now")})
    takt("jobs", "create", collection, "now", "-f", path)

    # When it has run
    wire = wait_until(lambda: takt.json("jobs", "history", collection, "now"), timeout=10)
    table = rows(takt("jobs", "history", collection, "now").stdout)

    # Then both forms show one Completed main action
    assert [entry["properties"]["status"] for entry in wire] == ["Completed"]
    assert table[0] == ["START", "STATUS", "ACTION", "RETRY", "MESSAGE"]
    assert table[1][1:4] == ["Completed", "MainAction", "0"]


@pytest.mark.e2e
def test_jobs_delete_then_show_prints_the_servers_message(
    takt: Takt, collection: str, tmp_path: Path
) -> None:
    path = write_job(tmp_path, {"action": http_action("http://127.0.0.1:9/x"), **LATER})
    takt("jobs", "create", collection, "gone", "-f", path)

    deleted = takt("jobs", "delete", collection, "gone")
    missing = takt("jobs", "show", collection, "gone", ok=False)

    assert deleted.stdout.strip() == f"job {collection}/gone: deleted"
    assert missing.stderr.strip() == "Error: job 'gone' not found"


@pytest.mark.e2e
def test_a_bad_job_gets_the_servers_400_message(
    takt: Takt, collection: str, tmp_path: Path
) -> None:
    path = write_job(tmp_path, {"action": http_action("not-a-uri")})

    result = takt("jobs", "create", collection, "bad", "-f", path, ok=False)

    assert "properties.action.request" in result.stderr


@pytest.mark.e2e
def test_the_key_comes_from_the_admin_token_setting(stack: Stack) -> None:
    # Given no --key, only TAKT_ADMIN_TOKEN (as on the machine that runs `takt up`)
    takt = Takt(["--url", stack.api_url], env=clean_env(admin_token=stack.token))

    takt("collections", "create", f"env-{uuid.uuid4().hex[:6]}")


@pytest.mark.e2e
def test_a_wrong_key_is_refused_with_the_servers_message(stack: Stack) -> None:
    takt = Takt(["--url", stack.api_url, "--key", "wrong"])

    result = takt("collections", "show", "c", ok=False)

    assert result.stderr.strip() == "Error: the API key is not valid"


@pytest.mark.e2e
def test_jobs_list_as_table_and_json(takt: Takt, collection: str, tmp_path: Path) -> None:
    for name, state in (("alpha", "Enabled"), ("beta", "Disabled")):
        document = {"action": http_action("http://127.0.0.1:9/x"), "state": state, **LATER}
        takt("jobs", "create", collection, name, "-f", write_job(tmp_path, document))

    table = rows(takt("jobs", "list", collection).stdout)
    disabled = takt.json("jobs", "list", collection, "--state", "disabled")

    assert table[0] == ["NAME", "STATE", "NEXT RUN", "LAST RUN", "RUNS", "FAILURES", "ACTION"]
    assert sorted(row[:2] for row in table[1:]) == [["alpha", "Enabled"], ["beta", "Disabled"]]
    assert [job["name"] for job in disabled] == [f"{collection}/beta"]


@pytest.mark.e2e
def test_jobs_run_disable_enable_rename_chown(
    takt: Takt, collection: str, tmp_path: Path, target: HttpTarget
) -> None:
    path = write_job(tmp_path, {"action": http_action(f"{target.url}/manual"), **LATER})
    takt("jobs", "create", collection, "manual", "-f", path)

    ran = takt("jobs", "run", collection, "manual")
    wait_until(lambda: target.requests_to("/manual"), timeout=10, message="the manual run")
    disabled = takt.json("jobs", "disable", collection, "manual")
    refused = takt("jobs", "run", collection, "manual", ok=False)
    enabled = takt("jobs", "enable", collection, "manual").stdout
    renamed = takt.json("jobs", "rename", collection, "manual", "Nightly report")
    owned = takt.json("jobs", "chown", collection, "manual", "admin")

    assert ran.stdout.strip() == f"job {collection}/manual: run requested"
    assert disabled["properties"]["state"] == "Disabled"
    assert refused.stderr.startswith("Error: ")
    assert "state:" in enabled
    assert "Enabled" in enabled
    assert renamed["properties"]["displayName"] == "Nightly report"
    assert owned["properties"]["owner"] == "admin"


@pytest.mark.e2e
def test_collections_list_disable_enable_delete(takt: Takt) -> None:
    takt("collections", "create", "one")
    takt("collections", "create", "two", "--sku", "Free")

    table = rows(takt("collections", "list").stdout)
    everywhere = takt.json("collections", "list", "--all")
    subscription = takt.flags[takt.flags.index("--subscription") + 1]
    mine = [c for c in everywhere if c["id"].startswith(f"/subscriptions/{subscription}/")]
    takt("collections", "disable", "one")
    disabled = takt.json("collections", "show", "one")
    takt("collections", "enable", "one")
    deleted = takt("collections", "delete", "one")
    gone = takt("collections", "show", "one", ok=False)

    assert sorted(row[0] for row in table[1:]) == ["one", "two"]
    assert sorted(c["name"] for c in mine) == ["one", "two"]
    assert disabled["properties"]["state"] == "Disabled"
    assert deleted.stdout.strip() == "collection one: deleted"
    assert "not found" in gone.stderr


@pytest.mark.e2e
def test_principals_add_list_revoke(takt: Takt, stack: Stack) -> None:
    # Given a new reader made with the CLI
    name = f"ro-{uuid.uuid4().hex[:6]}"
    added = takt("principals", "add", name, "--role", "reader")
    key = added.stdout.strip()

    # Then its key is printed alone on stdout, it is listed, and its key reads
    assert key.startswith("takt_")
    assert "shown this once" in added.stderr
    assert [name, "reader"] in rows(takt("principals", "list").stdout)
    assert {"name": name, "role": "reader"} in takt.json("principals", "list")
    reader = Takt(["--url", stack.api_url, "--key", key])
    reader("principals", "list")

    # When it is revoked (through the old name, a hidden alias), its key stops working
    takt("users", "revoke", name)
    assert "not valid" in reader("principals", "list", ok=False).stderr


@pytest.mark.e2e
def test_principals_add_as_json_holds_the_key(takt: Takt) -> None:
    name = f"ci-{uuid.uuid4().hex[:6]}"

    added = takt.json("principals", "add", name, "--role", "admin")

    assert added["name"] == name
    assert added["role"] == "admin"
    assert added["key"].startswith("takt_")
    takt("principals", "revoke", name)


@pytest.mark.e2e
def test_jobs_create_from_a_template(stack: Stack) -> None:
    # Given a collection in a subscription of this test's own
    takt = Takt(
        [
            "--url",
            stack.api_url,
            "--key",
            stack.token,
            "--subscription",
            f"tpl{uuid.uuid4().hex[:6]}",
        ]
    )
    takt("collections", "create", "tpl")

    # When a job is created from the HTTP template with its fields set
    job = takt.json(
        "jobs",
        "create",
        "tpl",
        "from-template",
        "--template",
        "http-request",
        "--set",
        "uri=http://127.0.0.1:9/hook",
        "--set",
        "method=POST",
    )

    # Then the job has them, and a bad template is a one-line error
    request = job["properties"]["action"]["request"]
    assert (request["uri"], request["method"]) == ("http://127.0.0.1:9/hook", "POST")
    bad = takt("jobs", "create", "tpl", "x", "--template", "nope", ok=False)
    assert "nope" in bad.output
