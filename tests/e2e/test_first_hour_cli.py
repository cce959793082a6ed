"""The first hour (issue 13): the names a newcomer reads are the names the CLI knows.

- one name for principals (``takt principals``) in every doc, page and help text;
- one subscription and resource group in the README, the docs, the client and the CLI,
  and a CLI that lists every collection, whatever its subscription;
- a bad setting names its environment variable, the value and what is expected.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import uuid

import click
import httpx
import pytest
from click.testing import CliRunner

from scheduler.cli.main import cli
from scheduler.client import SchedulerClient
from scheduler.errors import ConfigurationError
from scheduler.settings import load_client_settings, load_settings
from tests.support.helpers import ROOT
from tests.support.stack import Stack
from tests.support.swagger import ValidatingTransport

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PAGES = sorted((ROOT / "scheduler" / "console" / "templates").glob("*.html"))
# `takt <word>` and `takt <word> <word>`, words may be alternatives: `takt jobs show|run`.
_WORDS = r"[a-z][a-z-]*(?:\|[a-z][a-z-]*)*"
_MENTION = re.compile(rf"(?<![\w./-])takt ({_WORDS})(?: ({_WORDS}))?")


def mentions() -> list[tuple[str, str, str | None]]:
    """Every ``takt <command> [<subcommand>]`` written in the docs and the console's pages."""
    found = []
    for path in [*DOCS, *PAGES]:
        for match in _MENTION.finditer(path.read_text()):
            for command in match[1].split("|"):
                found.append((path.relative_to(ROOT).as_posix(), command, match[2]))
    return found


def clean_env(**values: str) -> dict[str, str | None]:
    env: dict[str, str | None] = {key: None for key in os.environ if key.startswith("TAKT_")}
    env.update(values)
    return env


# Item 7: one name for principals


def test_every_takt_command_the_docs_and_pages_mention_exists() -> None:
    # Given every `takt X [Y]` in README.md, docs/*.md and the console's templates
    found = mentions()
    assert len(found) > 20  # the parser sees them

    # Then each X is a command of `takt`, and each Y of a group X is one of its commands
    missing = []
    for where, command, sub in found:
        if command not in cli.commands:
            missing.append(f"{where}: takt {command}")
            continue
        group = cli.commands[command]
        if isinstance(group, click.Group) and sub is not None:
            missing += [
                f"{where}: takt {command} {name}"
                for name in sub.split("|")
                if name not in group.commands
            ]
    assert not missing, missing


def test_principals_have_one_name_in_docs_pages_and_help() -> None:
    # Given the command that manages principals (the API's /principals)
    help_text = CliRunner().invoke(cli, ["--help"]).output

    # Then `takt --help` lists `principals`, not a second name for the same thing
    assert re.search(r"^\s+principals\s", help_text, re.MULTILINE), help_text
    assert not re.search(r"^\s+users\s", help_text, re.MULTILINE), help_text

    # and no doc or page sends a reader to the hidden alias
    aliased = [f"{where}: takt users" for where, command, _ in mentions() if command == "users"]
    assert not aliased, aliased

    # and no help text or docstring of the code does either
    sources = (ROOT / "scheduler").rglob("*.py")
    aliased = [str(p.relative_to(ROOT)) for p in sources if "takt users" in p.read_text()]
    assert not aliased, aliased


@pytest.mark.parametrize("name", ["principals", "users"])
def test_principals_and_its_hidden_alias_have_the_same_commands(name: str) -> None:
    # When either name is asked for its commands
    result = CliRunner().invoke(cli, [name, "--help"])

    # Then both offer add, list and revoke
    assert result.exit_code == 0, result.output
    for command in ("add", "list", "revoke"):
        assert re.search(rf"^\s+{command}\s", result.output, re.MULTILINE), result.output


def test_the_sign_in_page_names_the_command_that_exists() -> None:
    page = (ROOT / "scheduler" / "console" / "templates" / "signin.html").read_text()
    command = re.search(r"<code>takt (\w+) (\w+)", page)

    assert command is not None
    group = cli.commands[command[1]]
    assert isinstance(group, click.Group)
    assert command[2] in group.commands
    assert not group.hidden


# Item 8: one subscription and resource group


def client_defaults() -> tuple[str, str]:
    parameters = inspect.signature(SchedulerClient.__init__).parameters
    return parameters["subscription"].default, parameters["resource_group"].default


def test_the_client_the_cli_and_the_docs_use_one_subscription_and_resource_group() -> None:
    # Given the client's and the CLI's defaults
    settings = load_client_settings({})
    assert client_defaults() == (settings.subscription, settings.resource_group)

    # Then every literal ARM path and subscription id in the docs uses them
    literal = re.compile(r"/subscriptions/([\w.-]+)/resourceGroups/([\w.-]+)")
    named = re.compile(r"\"([\w.-]+)\",\s*#\s*the subscription id")
    places = []
    for path in DOCS:
        text = path.read_text()
        places += [(path.name, m[1], m[2]) for m in literal.finditer(text)]
        places += [(path.name, m[1], settings.resource_group) for m in named.finditer(text)]
    assert places  # the README's curl block, the SDK example
    assert {(sub, rg) for _, sub, rg in places} == {client_defaults()}, places


@pytest.mark.e2e
def test_collections_list_all_shows_every_subscription(stack: Stack) -> None:
    # Given collections in two subscriptions
    first, second = (f"cli-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for subscription in (first, second):
        with SchedulerClient(
            stack.api_url, stack.token, subscription=subscription, transport=ValidatingTransport()
        ) as client:
            client.create_collection("shared-name")
    env = clean_env(TAKT_API_URL=stack.api_url, TAKT_API_KEY=stack.token)

    # When the CLI lists every collection
    table = CliRunner().invoke(cli, ["collections", "list", "--all"], env=env)
    listed = CliRunner().invoke(cli, ["collections", "list", "--all", "--json"], env=env)

    # Then both are there, each with the place it lives in
    assert table.exit_code == 0, table.output
    assert "SUBSCRIPTION" in table.output.splitlines()[0]
    rows = [line.split() for line in table.output.splitlines()[1:]]
    assert [first, "default", "shared-name"] in [row[:3] for row in rows]
    assert [second, "default", "shared-name"] in [row[:3] for row in rows]
    ids = {c["id"] for c in json.loads(listed.output)}
    for subscription in (first, second):
        assert (
            f"/subscriptions/{subscription}/resourceGroups/default/providers/"
            "Microsoft.Scheduler/jobCollections/shared-name"
        ) in ids


@pytest.mark.e2e
def test_listing_every_collection_needs_a_key_and_a_reader_may(stack: Stack) -> None:
    url = f"{stack.api_url}/providers/Microsoft.Scheduler/jobCollections"
    version = {"api-version": "2016-03-01"}
    with SchedulerClient(stack.api_url, stack.token, transport=ValidatingTransport()) as admin:
        reader_key = admin.add_principal(f"ro-{uuid.uuid4().hex[:6]}", "reader")

    anonymous = httpx.get(url, params=version)
    reader = httpx.get(url, params=version, headers={"Authorization": f"Bearer {reader_key}"})
    unversioned = httpx.get(url, headers={"Authorization": f"Bearer {reader_key}"})

    assert anonymous.status_code == 401
    assert reader.status_code == 200
    assert isinstance(reader.json()["value"], list)
    assert unversioned.status_code == 400


# Item 10: settings errors name the variable, the value and what is expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TAKT_API_PORT": "abc"}, "TAKT_API_PORT='abc': expected an integer from 0 to 65535"),
        ({"TAKT_API_PORT": "70000"}, "TAKT_API_PORT='70000': expected an integer from 0 to 65535"),
        (
            {"TAKT_HTTP_TIMEOUT_S": "0"},
            "TAKT_HTTP_TIMEOUT_S='0': expected a number greater than 0 and at most 3600",
        ),
        ({"TAKT_TASK_EVENTS": "maybe"}, "TAKT_TASK_EVENTS='maybe': expected true or false"),
        (
            {"TAKT_BEAT_BATCH_SIZE": "0"},
            "TAKT_BEAT_BATCH_SIZE='0': expected an integer from 1 to 10000",
        ),
        ({"TAKT_LOG_LEVEL": "LOUD"}, "TAKT_LOG_LEVEL='LOUD': expected one of DEBUG, INFO,"),
        ({"TAKT_VALKEY_MAXMEMORY": "0"}, "TAKT_VALKEY_MAXMEMORY='0': expected a size such as"),
        ({"TAKT_KEY_PREFIX": "a b"}, "TAKT_KEY_PREFIX='a b': expected 1 to 64 letters"),
        (
            {"TAKT_STORAGE_QUEUE_ENDPOINT": "https://q"},
            "TAKT_STORAGE_QUEUE_ENDPOINT='https://q': must contain {account}",
        ),
        (
            {"TAKT_HTTP_TIMEOUT_S": "90", "TAKT_HTTP_TIMEOUT_MAX_S": "30"},
            "TAKT_HTTP_TIMEOUT_S (90) must not exceed TAKT_HTTP_TIMEOUT_MAX_S (30)",
        ),
    ],
    ids=lambda value: (
        ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else ""
    ),
)
def test_a_bad_value_names_the_variable_the_value_and_what_is_expected(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(environ)

    text = str(raised.value)
    assert text.startswith(message), text
    assert "\n" not in text
    # never pydantic's wording or the internal field name
    for internal in ("validation error", "input_value", "api_port", "pydantic", "For further"):
        assert internal not in text, text


def test_every_bad_value_is_named_on_one_line() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings({"TAKT_API_PORT": "abc", "TAKT_FLOWER_PORT": "-1"})

    text = str(raised.value)
    assert "TAKT_API_PORT='abc'" in text
    assert "TAKT_FLOWER_PORT='-1'" in text
    assert "\n" not in text


def test_a_secret_setting_is_never_echoed() -> None:
    # A key given where a value of another shape was expected is not printed back
    with pytest.raises(ConfigurationError) as raised:
        load_settings({}, admin_token=["takt_s3cret"])

    assert "s3cret" not in str(raised.value)
    assert "TAKT_ADMIN_TOKEN" in str(raised.value)


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("TAKT_REDIS_ULR", "TAKT_REDIS_URL"),
        ("TAKT_API_PROT", "TAKT_API_PORT"),
        ("TAKT_DATADIR", "TAKT_DATA_DIR"),
        ("TAKT_LOGLEVEL", "TAKT_LOG_LEVEL"),
    ],
)
def test_an_unknown_variable_suggests_the_closest_known_one(typo: str, meant: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings({typo: "x"})

    assert str(raised.value) == f"unknown setting {typo}: did you mean {meant}?"


def test_an_unknown_variable_like_no_other_says_where_the_settings_are() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings({"TAKT_ZZZZZZZZ": "x"})

    text = str(raised.value)
    assert text.startswith("unknown setting TAKT_ZZZZZZZZ")
    assert "did you mean" not in text
    assert "README" in text


@pytest.mark.parametrize(
    "argv", [["api"], ["up"], ["manage", "VerifyStore"], ["jobs", "list", "demo"]]
)
def test_the_cli_says_a_bad_setting_in_one_line_and_exits_2(argv: list[str]) -> None:
    result = CliRunner().invoke(cli, argv, env=clean_env(TAKT_API_PORT="abc"))

    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert result.stderr == "Error: TAKT_API_PORT='abc': expected an integer from 0 to 65535\n"


def test_the_takt_command_with_a_typo_exits_2_with_one_line_and_no_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAKT_")}
    env["TAKT_API_PROT"] = "8001"

    result = subprocess.run(
        [sys.executable, "-m", "scheduler", "collections", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr == "Error: unknown setting TAKT_API_PROT: did you mean TAKT_API_PORT?\n"
    assert result.stdout == ""
