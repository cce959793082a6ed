"""deploy/: the Prometheus alert rules and the Grafana dashboard name only metrics Takt
exports (taken from the metric definitions, not a list of our own), and promtool accepts
the rules when it is installed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.observability import metric_names
from tests.support.helpers import ROOT

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "takt-dashboard.json"
#: The alerts the issue asks for, by what they watch.
REQUIRED_ALERTS = {
    "TaktJobFailingRepeatedly",
    "TaktLatenessP99High",
    "TaktLedgerGrowing",
    "TaktNoBeatAlive",
    "TaktStoreUnreachable",
}

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_KEYWORDS |= {"and", "or", "unless", "inf", "nan"}
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metrics_in(expression: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, label names (in matchers and grouping clauses) or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    grouping = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
    text = re.sub(grouping, " ", text)  # grouping clauses and their label names
    names = set()
    for match in _IDENTIFIER.finditer(text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group(0).lower() in _KEYWORDS:
            continue  # a function, an aggregation or a keyword
        if match.start() > 0 and (
            text[match.start() - 1].isdigit() or text[match.start() - 1] == "."
        ):
            continue  # the exponent or unit of a number
        names.add(match.group(0))
    return names


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]


def test_the_name_extraction_finds_metrics_and_skips_the_rest() -> None:
    # Given an expression with functions, groupings, matchers, ranges and keywords
    expression = (
        'histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{x="y"}[5m]))) > 1e3 '
        "and b or on (job) c offset 5m"
    )

    # When its metric names are taken
    found = metrics_in(expression)

    # Then they are the three metrics, nothing else
    assert found == {"a_bucket", "b", "c"}


def test_every_alert_rule_names_only_metrics_takt_exports() -> None:
    # Given the alert rules and every sample name Takt's metric definitions produce
    exported = metric_names()

    # When each rule's expression is read
    read = {rule["alert"]: metrics_in(rule["expr"]) for rule in rules()}

    # Then every rule reads a Takt metric and no other, and the alerts are there
    assert set(read) >= REQUIRED_ALERTS
    for alert, names in read.items():
        assert names, f"{alert} names no metric"
        assert names <= exported, f"{alert} names {sorted(names - exported)}, not exported"


def test_every_dashboard_panel_names_only_metrics_takt_exports() -> None:
    # Given the Grafana dashboard
    expressions = dashboard_expressions()

    # When each panel's queries are read
    names = [metrics_in(expression) for expression in expressions]

    # Then there are queries, each reads Takt metrics only, and together they cover the
    # alerts' metrics
    assert len(expressions) >= 10
    exported = metric_names()
    for expression, found in zip(expressions, names, strict=True):
        assert found, f"{expression!r} names no metric"
        assert found <= exported, f"{expression!r} names {sorted(found - exported)}"
    alerted = set().union(*(metrics_in(rule["expr"]) for rule in rules()))
    assert alerted <= set().union(*names)


def test_every_alert_has_a_promtool_case_in_which_it_fires() -> None:
    # Given the alert rules and promtool's unit tests of them
    cases = yaml.safe_load(ALERT_TESTS.read_text())

    # When the alerts each test expects to fire are collected
    firing = {
        check["alertname"]
        for case in cases["tests"]
        for check in case["alert_rule_test"]
        if check.get("exp_alerts")
    }

    # Then every rule is among them
    assert cases["rule_files"] == ["alerts.yml"]
    assert firing == {rule["alert"] for rule in rules()}


def promtool() -> str:
    """promtool (Debian's prometheus package). Without it the parsed checks above still
    run; the promtool tests skip locally and fail in CI (``CI=true``; .ci/run installs it),
    as the other tests that need a tool do."""
    found = shutil.which("promtool")
    if found is None:
        missing = "promtool is not installed (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(f"{missing}; parsed above instead")
    return found


@pytest.mark.parametrize(
    ("command", "path"),
    [(["check", "rules"], ALERTS), (["test", "rules"], ALERT_TESTS)],
    ids=["check-rules", "test-rules"],
)
def test_promtool_accepts_the_rules_and_their_unit_tests_pass(
    command: list[str], path: Path
) -> None:
    # Given promtool
    binary = promtool()

    # When it checks the rules file, or runs the rules' unit tests (each alert fires on
    # the series it is about, and not before its `for`)
    result = subprocess.run(
        [binary, *command, path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        check=False,
    )

    # Then it accepts every rule and every case passes
    assert result.returncode == 0, result.stdout + result.stderr
