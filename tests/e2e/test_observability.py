"""Observability on a real deployment: one scrape of the API's /metrics shows the beats'
and workers' counters (pushed through the store), the alert rules hold against it, no
secret reaches the metrics or the logs, and TAKT_LOG_FORMAT=json gives one JSON object a
line in the API, the beat and the worker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from scheduler.observability.logs import ATTEMPT_FIELDS
from scheduler.store.jobs import JobStore
from scheduler.store.principals import Role, ensure_principal_key
from tests.support.arm import http_job, in_seconds, new_collection, put_job
from tests.support.deployments import Deployment
from tests.support.helpers import ADMIN_TOKEN, ROOT, HttpTarget, free_port, wait_until
from tests.support.processes import alive
from tests.support.swagger import validating_client

pytestmark = pytest.mark.e2e

METRICS_TOKEN = "takt_test_metrics_token_6b1e"
READER_KEY = "takt_test_reader_key_obs"
BASIC_PASSWORD = "basic-password-obs-4e9b"
URI_PASSWORD = "uri-password-obs-51d2"
FUNCTION_CODE = "function-code-obs-88aa"
API_KEY = "api-key-obs-7f3a9c"
ERROR_TOKEN = "error-token-obs-d07e"
SECRETS = (METRICS_TOKEN, BASIC_PASSWORD, URI_PASSWORD, FUNCTION_CODE, API_KEY, ERROR_TOKEN)
#: Fields every JSON log line has.
LINE_FIELDS = {"time", "level", "logger", "message", "role"}

Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass
class Observed:
    """A deployment with JSON logs at DEBUG, metrics pushed twice a second, and its API."""

    deployment: Deployment
    api: subprocess.Popen[bytes]
    http: httpx.Client
    logs: Path

    def scrape(self, token: str = ADMIN_TOKEN) -> str:
        response = self.http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return response.text

    def samples(self) -> Samples:
        return parse(self.scrape())

    def log_files(self) -> dict[str, Path]:
        """Each process's log by name: api-0, then the deployment's (beat-1, worker-2...)."""
        return {path.stem: path for path in self.logs.glob("*.log")}


def parse(text: str) -> Samples:
    """Every sample of a scrape by name, as Prometheus would read it."""
    found: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name].append((dict(sample.labels), sample.value))
    return found


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for have, value in samples.get(name, [])
        if all(have.get(key) == wanted for key, wanted in labels.items())
    )


def cid_of(collection_path: str) -> str:
    """A collection's id (``subscription/resourceGroup/collection``) from its ARM path."""
    return f"sub1/rg1/{collection_path.rsplit('/', 1)[1]}"


def start_observed(redis_url: str, logs: Path, broker_db: int) -> Observed:
    deployment = Deployment(redis_url, logs, broker_url=f"{redis_url}/{broker_db}")
    port = free_port()
    deployment.env.update(
        {
            "TAKT_API_PORT": str(port),
            "TAKT_ADMIN_TOKEN": ADMIN_TOKEN,
            "TAKT_METRICS_TOKEN": METRICS_TOKEN,
            "TAKT_METRICS_PUSH_INTERVAL_S": "0.5",
            "TAKT_LOG_FORMAT": "json",
            "TAKT_LOG_LEVEL": "DEBUG",
            "PYTHONUNBUFFERED": "1",
        }
    )
    with (logs / "api-0.log").open("ab") as out:
        api = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "api"],
            env=deployment.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deployment.processes.append(api)
    http = validating_client(
        base_url=f"http://127.0.0.1:{port}",
        timeout=10,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    try:
        wait_until(lambda: _healthy(http), timeout=60, message="the API to answer /healthz")
        deployment.spawn("beat")
        deployment.spawn("worker", "-c", "8", "--without-mingle", "--without-gossip")
    except BaseException:
        http.close()
        deployment.__exit__()
        raise
    return Observed(deployment, api, http, logs)


def _healthy(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def observed(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    found = start_observed(redis_url, tmp_path_factory.mktemp("observed"), broker_db=10)
    yield found
    found.http.close()
    found.deployment.__exit__()


def failing_alert() -> dict[str, Any]:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    (rule,) = (
        rule
        for group in rules["groups"]
        for rule in group["rules"]
        if rule["alert"] == "TaktJobFailingRepeatedly"
    )
    return dict(rule)


def evaluate_failing_alert(expression: str, samples: Samples) -> dict[tuple[str, ...], float]:
    """The alert's PromQL evaluated by hand on one scrape: its shape is
    ``sum by (L) (increase(M{label=~"re"}[w])) >= N``; every counter started inside the
    window (the deployment is younger than it), so its increase is its value."""
    shape = re.fullmatch(
        r"sum by \(([\w, ]+)\)\s*\(increase\((\w+)\{(\w+)=~\"([^\"]+)\"\}\[\w+\]\)\)\s*>=\s*(\d+)",
        " ".join(expression.split()),
    )
    assert shape is not None, f"the rule's expression changed shape: {expression}"
    by, metric, label, pattern, threshold = shape.groups()
    keys = [key.strip() for key in by.split(",")]
    groups: dict[tuple[str, ...], float] = defaultdict(float)
    for labels, value in samples.get(metric, []):
        if re.fullmatch(pattern, labels.get(label, "")):
            groups[tuple(labels.get(key, "") for key in keys)] += value
    return {key: value for key, value in groups.items() if value >= float(threshold)}


def test_one_scrape_shows_firings_attempts_lateness_and_a_failing_job_the_alert_names(
    observed: Observed, target: HttpTarget
) -> None:
    # Given five jobs that succeed, in one collection, and one that fails three times
    # (two retries), in another
    target.answer("/ok", 200)
    target.answer("/fail", 500)
    fine = new_collection(observed.http)
    for index in range(5):
        put_job(
            observed.http, fine, f"ok-{index}", http_job(f"{target.url}/ok", start=in_seconds(0.3))
        )
    failing = new_collection(observed.http)
    body = http_job(f"{target.url}/fail", start=in_seconds(0.3))
    body["properties"]["action"]["retryPolicy"] = {
        "retryType": "Fixed",
        "retryCount": 2,
        "retryInterval": "PT1S",
    }
    put_job(observed.http, failing, "broken", body)

    # When they have run, and the workers' and beat's metrics have reached the store
    wait_until(lambda: len(target.requests_to("/ok")) >= 5, timeout=30, message="5 runs")
    wait_until(lambda: len(target.requests_to("/fail")) >= 3, timeout=30, message="3 failures")
    fine_cid, failing_cid = cid_of(fine), cid_of(failing)
    samples = wait_until(
        lambda: (
            (s := observed.samples())
            and total(s, "takt_worker_attempts_total", outcome="failed") >= 1
            and total(s, "takt_worker_attempts_total", outcome="completed") >= 5
            and s
        ),
        timeout=20,
        message="the attempts in one scrape",
    )

    # Then one scrape shows the firings, the attempts and the lateness histogram
    assert total(samples, "takt_beat_firings_total") >= 5
    assert total(samples, "takt_worker_attempts_total") >= 5
    assert total(samples, "takt_beat_lateness_seconds_count") >= 5
    assert total(samples, "takt_beat_lateness_seconds_bucket", le="+Inf") >= 5
    assert total(samples, "takt_beat_claim_batch_size_count") >= 1
    assert total(samples, "takt_worker_action_duration_seconds_count", action_type="Http") >= 8
    # ... the failing job in the failure counter, under its collection, never its name
    assert total(samples, "takt_worker_attempts_total", outcome="retried") >= 2
    assert (
        total(samples, "takt_worker_attempts_total", outcome="failed", collection=failing_cid) == 1
    )
    assert total(samples, "takt_worker_attempts_total", collection=fine_cid) >= 5
    # ... each process's series apart, and who is alive
    assert total(samples, "takt_beats_alive") == 1
    assert total(samples, "takt_workers_alive") >= 1
    assert total(samples, "takt_store_up") == 1
    assert total(samples, "takt_store_jobs") >= 6
    roles = {labels.get("role") for values in samples.values() for labels, _ in values}
    assert {"api", "beat", "worker"} <= roles
    # ... the API's requests by route template, not by path
    routes = {labels["route"] for labels, _ in samples["takt_api_requests_total"]}
    assert any(route.endswith("/jobs/{jobName}") for route in routes), routes
    assert not any("ok-" in route or "broken" in route for route in routes), routes
    assert all("broken" not in json.dumps(labels) for v in samples.values() for labels, _ in v)

    # ... and the rule "job failing repeatedly", evaluated on the scrape, names the
    # failing collection and not the other
    firing = evaluate_failing_alert(failing_alert()["expr"], samples)
    assert (failing_cid, "Http") in firing
    assert all(key[0] != fine_cid for key in firing)


def test_metrics_need_the_admin_key_or_the_metrics_token(
    observed: Observed, redis_url: str
) -> None:
    # Given the deployment's API, and a reader's key
    url = "/metrics"
    store = JobStore.from_url(redis_url, observed.deployment.prefix)
    ensure_principal_key(store, "auditor", Role.READER, READER_KEY)
    store.close()

    # When /metrics is asked without a key, with a wrong one, with the metrics token and
    # with the admin key
    bare = httpx.get(f"{observed.http.base_url}{url}", timeout=10)
    wrong = httpx.get(
        f"{observed.http.base_url}{url}",
        headers={"Authorization": "Bearer not-the-token"},
        timeout=10,
    )
    reader = httpx.get(
        f"{observed.http.base_url}{url}",
        headers={"Authorization": f"Bearer {READER_KEY}"},
        timeout=10,
    )
    with_token = observed.scrape(METRICS_TOKEN)
    with_admin = observed.scrape()

    # Then only the token and the admin key see the metrics (they describe every tenant)
    assert bare.status_code == 401
    assert wrong.status_code == 401
    assert reader.status_code == 403
    assert "takt_beats_alive" in with_token
    assert "takt_beats_alive" in with_admin
    assert "not-the-token" not in with_admin


def test_no_secret_of_a_job_reaches_the_metrics_or_the_json_logs(
    observed: Observed, target: HttpTarget
) -> None:
    # Given a job holding credentials in its URI, headers, basic authentication and error
    # action, whose endpoint fails (so it runs its error action too)
    hook, alert = f"/hook?code={FUNCTION_CODE}&page=2", f"/alert?access_token={ERROR_TOKEN}"
    target.answer(hook, 500)
    host = target.url.removeprefix("http://")
    collection = new_collection(observed.http)
    body = http_job(
        f"http://hook:{URI_PASSWORD}@{host}{hook}",
        start=in_seconds(0.3),
        method="POST",
    )
    request = body["properties"]["action"]["request"]
    request["headers"] = {"x-api-key": API_KEY, "Content-Type": "application/json"}
    request["body"] = "{}"
    request["authentication"] = {"type": "Basic", "username": "hook", "password": BASIC_PASSWORD}
    body["properties"]["action"]["errorAction"] = {
        "type": "Http",
        "request": {"uri": f"{target.url}{alert}", "method": "POST"},
    }
    put_job(observed.http, collection, "secretive", body)

    # When it has run, and its error action too
    wait_until(lambda: target.requests_to(alert), timeout=30, message="the error action")
    cid = cid_of(collection)
    scrape = wait_until(
        lambda: (
            (text := observed.scrape())
            and total(parse(text), "takt_worker_error_actions_total", collection=cid) >= 1
            and text
        ),
        timeout=20,
        message="the error action in the metrics",
    )

    # Then no credential is in the scrape, nor in any line of any process's log, though
    # the worker wrote lines about the job's attempts
    logs = {name: path.read_text() for name, path in observed.log_files().items()}
    for secret in SECRETS:
        assert secret not in scrape
        for name, text in logs.items():
            assert secret not in text, f"{secret} in the log of {name}"
    worker_lines = [json.loads(line) for line in logs["worker-2"].splitlines() if line]
    assert any(line.get("job", "").endswith("/secretive") for line in worker_lines)


def test_every_line_of_the_api_beat_and_worker_logs_is_a_json_object_with_its_fields(
    observed: Observed, target: HttpTarget
) -> None:
    # Given a job run on the deployment (the logs are at DEBUG)
    target.answer("/logged", 200)
    collection = new_collection(observed.http)
    put_job(
        observed.http, collection, "logged", http_job(f"{target.url}/logged", start=in_seconds(0.2))
    )
    wait_until(lambda: target.requests_to("/logged"), timeout=30, message="the run")
    jid = cid_of(collection) + "/logged"

    # When each process's log is read line by line
    def lines(name: str) -> list[dict[str, Any]]:
        text = observed.log_files()[name].read_text().splitlines()
        if name.startswith("beat"):
            text = after_the_beat_banner(text)
        return [json.loads(line) for line in text if line.strip()]

    about_the_job = wait_until(
        lambda: [line for line in lines("worker-2") if line.get("job") == jid],
        timeout=10,
        message="the worker's lines about the attempt",
    )

    # Then every line parses, has the fields and names its process's role
    for name, role in (("api-0", "api"), ("beat-1", "beat"), ("worker-2", "worker")):
        parsed = lines(name)
        assert parsed, f"{name} wrote nothing"
        for line in parsed:
            assert set(line) >= LINE_FIELDS, line
            assert line["role"] == role, line
    # ... and the lines about the attempt carry its fields, the last its outcome
    for line in about_the_job:
        assert set(ATTEMPT_FIELDS) <= set(line), line
        assert line["attempt"] == "m0"
        assert line["action_type"] == "Http"
        assert re.fullmatch(r"[0-9a-f-]{36}", line["execution_tag"])
    assert about_the_job[-1]["outcome"] == "completed"


def after_the_beat_banner(lines: list[str]) -> list[str]:
    """A beat's log from its first line of JSON: Celery prints its banner before it sets
    up logging, and `takt beat` cannot pass Celery's global --quiet (a change for the CLI,
    asked for in issue 16's report). The banner must be Celery's, nothing else."""
    first = next((i for i, line in enumerate(lines) if line.startswith("{")), len(lines))
    assert first == 0 or lines[0].startswith("celery beat v"), lines[:first]
    return lines[first:]


def test_a_worker_killed_mid_call_moves_the_redelivery_counter(
    redis_url: str, tmp_path: Path, target: HttpTarget
) -> None:
    # Given a deployment (action timeout 3 s) and a job whose endpoint holds its call open
    observed = start_observed(redis_url, tmp_path, broker_db=11)
    try:
        release = target.hold("/held")
        collection = new_collection(observed.http)
        put_job(
            observed.http, collection, "held", http_job(f"{target.url}/held", start=in_seconds(0.2))
        )
        wait_until(lambda: target.requests_to("/held"), timeout=30, message="the first call")
        before = total(observed.samples(), "takt_beat_redeliveries_total")

        # When the worker is SIGKILLed mid-call and another one starts
        doomed = observed.deployment.processes[-1]
        os.kill(doomed.pid, signal.SIGKILL)
        wait_until(lambda: not alive(doomed.pid) or doomed.poll() is not None, timeout=5)
        release.set()
        observed.deployment.spawn("worker", "-c", "4", "--without-mingle", "--without-gossip")

        # Then, once its lease expires, the beat sends the attempt again, and the scrape
        # counts it as a stalled redelivery
        wait_until(lambda: len(target.requests_to("/held")) >= 2, timeout=40, message="redo")
        samples = wait_until(
            lambda: (
                (s := observed.samples())
                and total(s, "takt_beat_redeliveries_total", reason="stalled") > before
                and s
            ),
            timeout=10,
            message="the redelivery in the metrics",
        )
        assert total(samples, "takt_beat_redeliveries_total", reason="stalled") == before + 1
    finally:
        observed.http.close()
        observed.deployment.__exit__()
