"""The alerts (deploy/prometheus) and the dashboard (deploy/grafana) against a real worker.

Starts the real worker (TOKENLEDGER_BIN) on a private redis-server, handles jobs of every outcome so
that the labelled counters exist, scrapes its `/metrics`, and checks that every metric the alert
rules and the dashboard name is one the worker exports (histograms by their `_bucket`, `_sum` and
`_count` series), apart from the few listed in EXCEPTIONS. Then a real Prometheus (Debian's
`prometheus`, with deploy/prometheus/prometheus.yml pointed at the worker) scrapes it and loads the
rules: every dashboard query returns data, every rule evaluates, and on this healthy worker the
only alert that fires is the one for the dead letter the test made.

Needs TOKENLEDGER_BIN, redis-server (REDIS_SERVER), redis-py and PyYAML; the Prometheus part needs
`prometheus` on the PATH. Skips what it cannot run.

    TOKENLEDGER_BIN=.build/debug/tokenledger python3 -m pytest -q deploy/tests/test_monitoring.py
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from processes import Processes, eventually

redis = pytest.importorskip("redis")
yaml = pytest.importorskip("yaml")

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
REPO = DEPLOY.parent
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "tokenledger.json"
OPERATIONS = REPO / "docs" / "OPERATIONS.md"
TOKENLEDGER_BIN = os.environ.get("TOKENLEDGER_BIN")
REDIS_SERVER = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
PROMETHEUS = shutil.which("prometheus")

# Names the rules or the dashboard may use although the worker does not export them, each with why.
EXCEPTIONS = {
    "up": "written by Prometheus itself for every scrape target",
}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
# What the dashboard must show (issue: queue depth, jobs/s by outcome, batch duration, dead letters,
# lease held, ledger ready, WAL frames, checkpoint failures, redis errors, holds, lapsed tokens, renewals).
DASHBOARD_MUST_SHOW = {
    "tokenledger_queue_depth", "tokenledger_jobs_total", "tokenledger_batch_duration_seconds_bucket",
    "tokenledger_dead_letters_total", "tokenledger_lease_held", "tokenledger_ledger_ready",
    "tokenledger_wal_frames", "tokenledger_checkpoint_failures_total", "tokenledger_redis_errors_total",
    "tokenledger_open_holds", "tokenledger_held_tokens", "tokenledger_lapsed_tokens_total",
    "tokenledger_renewals_total", "tokenledger_renewal_runs_total",
}

# --- PromQL: which metric names an expression selects -------------------------------------------

PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                   "bool", "offset", "inf", "nan"}
NAME = r"[A-Za-z_:][A-Za-z0-9_:]*"


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects: identifiers that are neither functions, keywords, label
    names (in matchers and grouping clauses) nor parts of numbers or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # string literals
    text = re.sub(r"#[^\n]*", " ", text)  # comments
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    names = set()
    for match in re.finditer(rf"(?<![\w.$]){NAME}", text):
        word = match.group(0)
        if text[match.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def matcher_labels(expr: str) -> dict[str, set[str]]:
    """Label names used in the matchers of each selector that names its metric."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    used: dict[str, set[str]] = {}
    for match in re.finditer(rf"(?<![\w.$])({NAME})\s*\{{([^}}]*)\}}", text):
        used.setdefault(match.group(1), set()).update(re.findall(rf"({NAME})\s*(?:=~|!~|!=|=)", match.group(2)))
    return used


def test_metric_names_finds_names_and_only_names():
    expr = ('histogram_quantile(0.99, sum by (type, le) (rate(tokenledger_job_duration_seconds_bucket'
            '{instance=~"$instance", type!="x"}[$__rate_interval])))')
    assert metric_names(expr) == {"tokenledger_job_duration_seconds_bucket"}
    expr = ('max by (partition) (tokenledger_queue_depth and on (instance, partition) '
            '(tokenledger_lease_held == 1)) > 1e3\nunless on ()\nsum(rate(tokenledger_jobs_total[5m])) > 0')
    assert metric_names(expr) == {"tokenledger_queue_depth", "tokenledger_lease_held", "tokenledger_jobs_total"}
    expr = 'sum(increase(a_total[26h])) == 0 and on () count(b_total offset 26h) > 0 or vector(0) # c_total'
    assert metric_names(expr) == {"a_total", "b_total"}
    assert metric_names('{__name__="x"} or up{job="tokenledger"} / ignoring(instance) group_left y') == {"up", "y"}
    assert matcher_labels('rate(m_total{outcome="invalid", instance=~"$i"}[1m]) + n') == {"m_total": {"outcome", "instance"}}


# --- what the rules and the dashboard name ------------------------------------------------------

def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every query of the dashboard: panel targets and templating variables."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        selector = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
        assert selector, f"variable {variable['name']}: only label_values(selector, label) is understood"
        queries.append((f"variable {variable['name']}", selector.group(1)))
    return queries


def named_metrics() -> dict[str, set[str]]:
    """metric name -> where it is named (alert or dashboard query)."""
    named: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            named.setdefault(name, set()).add(f"alert {rule['alert']}")
    for where, expr in dashboard_queries():
        for name in metric_names(expr):
            named.setdefault(name, set()).add(f"dashboard {where}")
    return named


def test_dashboard_is_well_formed_and_shows_what_operators_need():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "tokenledger" and dashboard["title"] == "TokenLedger"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    names = {name for _, expr in dashboard_queries() for name in metric_names(expr)}
    assert DASHBOARD_MUST_SHOW <= names, f"missing from the dashboard: {sorted(DASHBOARD_MUST_SHOW - names)}"


def test_every_alert_has_a_runbook_line_in_operations():
    operations = OPERATIONS.read_text()
    section = operations.split("\n### Alerts\n", 1)
    assert len(section) == 2, "docs/OPERATIONS.md has an Alerts section"
    table = section[1].split("\n#", 1)[0]
    runbooks = {match.group(1): match.group(2) for match in re.finditer(r"^\| `(\w+)` \|(.*)\|\s*$", table, re.M)}
    rules = alert_rules()
    assert rules, "alerts.yml holds rules"
    for rule in rules:
        assert rule["alert"] in runbooks, f"{rule['alert']} has no runbook line in docs/OPERATIONS.md, Alerts"
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"] == "docs/OPERATIONS.md#alerts"
    assert set(runbooks) == {rule["alert"] for rule in rules}, "no runbook line for an alert that does not exist"
    assert "PENDING" not in runbooks["TokenLedgerRecoveryWindowShort"], "the recovery stream's age is exported now"


# --- the real worker ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()




def parse_metrics(text: str) -> dict[str, dict[frozenset, float]]:
    """Prometheus text format -> name -> {label pairs: value}."""
    samples: dict[str, dict[frozenset, float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        samples.setdefault(name, {})[pairs] = float(value)
    return samples


class Observed:
    """A worker that handled jobs of every outcome, and (when installed) a Prometheus scraping it."""

    def __init__(self, metrics_url: str, prometheus_url: str | None):
        self.metrics_url = metrics_url
        self.prometheus_url = prometheus_url

    def scrape(self) -> str:
        status, body = get(self.metrics_url)
        assert status == 200
        return body

    def query(self, expr: str) -> list[dict]:
        status, body = get(f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", f"{expr}: {body}"
        return answer["data"]["result"]

    def api(self, path: str) -> dict:
        status, body = get(f"{self.prometheus_url}/api/v1/{path}")
        assert status == 200, body
        return json.loads(body)["data"]


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    if not TOKENLEDGER_BIN:
        pytest.skip("TOKENLEDGER_BIN is not set (path to the built tokenledger executable)")
    if not REDIS_SERVER:
        pytest.skip("redis-server is not on the PATH")
    folder = tmp_path_factory.mktemp("monitoring")
    processes = Processes(folder)
    client = None
    try:
        socket_path = folder / "redis.sock"
        processes.start("redis", [REDIS_SERVER, "--port", "0", "--unixsocket", str(socket_path),
                                  "--unixsocketperm", "700", "--dir", str(folder), "--save", "",
                                  "--appendonly", "no", "--loglevel", "warning"])
        client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=30)
        eventually("redis-server answers", lambda: client.ping(), timeout=20, every=0.05)

        http_port = free_port()
        prefix = f"mon-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "TOKENLEDGER_REDIS_URL": f"unix://{socket_path}",
               "TOKENLEDGER_DATABASE": str(folder / "ledger.sqlite"), "TOKENLEDGER_PREFIX": prefix,
               "TOKENLEDGER_HTTP": f"127.0.0.1:{http_port}"}
        env.pop("TOKENLEDGER_CONFIG", None)
        processes.start("worker", [TOKENLEDGER_BIN, "worker"], env=env)
        metrics_url = f"http://127.0.0.1:{http_port}/metrics"
        eventually("the worker's /metrics answers", lambda: get(metrics_url)[0] == 200)

        def send(job: dict) -> dict:
            reply_to = f"{prefix}:reply:{uuid.uuid4()}"
            client.lpush(f"{prefix}:jobs", json.dumps({**job, "replyTo": reply_to}))
            got = client.brpop([reply_to], timeout=30)
            assert got is not None, f"no reply to {job}"
            return json.loads(got[1])

        assert send({"type": "open", "id": "open-1", "userId": "mona"})["success"]
        charge = {"type": "charge", "id": "charge-1", "userId": "mona", "operation": "chatgpt_message"}
        assert send(charge)["duplicate"] is False
        assert send(charge)["duplicate"] is True
        assert send({"type": "debit", "id": "debit-1", "userId": "mona", "operationType": "x",
                     "amount": 1_000_000})["success"] is False
        hold = send({"type": "hold", "id": "hold-1", "userId": "mona", "amount": 5, "expiresIn": 3600})
        assert hold["success"], hold

        prometheus_url = None
        if PROMETHEUS:
            config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
            config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
            config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / name) for name in config["rule_files"]]
            (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "tokenledger"]
            job["static_configs"] = [{"targets": [f"127.0.0.1:{http_port}"]}]
            (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
            prometheus_port = free_port()
            processes.start("prometheus", [PROMETHEUS, f"--config.file={folder / 'prometheus.yml'}",
                                           f"--storage.tsdb.path={folder / 'tsdb'}",
                                           f"--web.listen-address=127.0.0.1:{prometheus_port}"])
            prometheus_url = f"http://127.0.0.1:{prometheus_port}"
            watching = Observed(metrics_url, prometheus_url)
            # Seen before the dead letter, so that its increase is seen too.
            eventually("Prometheus scrapes the worker",
                       lambda: watching.query('tokenledger_dead_letters_total{job="tokenledger"} == 0'), timeout=90)

        client.lpush(f"{prefix}:jobs", b"not json")  # a dead letter: outcome invalid
        eventually("the dead letter is written", lambda: client.llen(f"{prefix}:dead") == 1)
        # Sampled every 2 s once P:applied holds a job.
        eventually("the recovery stream's age is sampled",
                   lambda: "tokenledger_applied_stream_age_seconds" in get(metrics_url)[1])
        yield Observed(metrics_url, prometheus_url)
    finally:
        if client is not None:
            client.close()
        processes.close()


def test_every_metric_the_rules_and_the_dashboard_name_is_exported(observed):
    exported = parse_metrics(observed.scrape())
    for outcome in ("success", "duplicate", "refused", "invalid"):
        assert any(("outcome", outcome) in labels for labels in exported["tokenledger_jobs_total"]), outcome
    named = named_metrics()
    missing = {name: sorted(where) for name, where in named.items() if name not in exported and name not in EXCEPTIONS}
    assert not missing, f"named by the rules or the dashboard but not exported by the worker: {missing}"
    for name in EXCEPTIONS:
        assert name not in exported, f"{name} is exported now: remove it from EXCEPTIONS (and its PENDING note)"
        assert name in named, f"{name} is named nowhere: remove it from EXCEPTIONS"
    for where, expr in [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()] + dashboard_queries():
        for name, labels in matcher_labels(expr).items():
            if name in EXCEPTIONS:
                continue
            known = TARGET_LABELS | {label for series in exported[name] for label, _ in series}
            assert labels <= known, f"{where}: {name} has no label {sorted(labels - known)}"


def test_a_healthy_worker_reads_as_ready_and_active(observed):
    exported = eventually("the open hold is sampled", lambda: (
        lambda samples: samples if samples["tokenledger_open_holds"] == {frozenset(): 1.0} else None)(
        parse_metrics(observed.scrape())))
    assert exported["tokenledger_lease_held"] == {frozenset(): 1.0}
    assert exported["tokenledger_ledger_ready"] == {frozenset(): 1.0}, "ready from the start, not only after an outage"
    assert exported["tokenledger_dead_letters_total"] == {frozenset(): 1.0}


def test_prometheus_over_the_worker_answers_every_query_and_fires_only_what_happened(observed):
    if not observed.prometheus_url:
        pytest.skip("prometheus is not on the PATH (apt-get install prometheus)")
    eventually("Prometheus sees the dead letter",
               lambda: observed.query('tokenledger_dead_letters_total{job="tokenledger"} == 1'))
    eventually("Prometheus sees the invalid job",
               lambda: observed.query('tokenledger_jobs_total{job="tokenledger", outcome="invalid"}'))
    time.sleep(2)  # a few more scrapes, so that every rate has two samples after the last change
    for where, expr in dashboard_queries():
        promql = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
        assert observed.query(promql), f"dashboard {where}: no data for {promql}"

    def alerts_settled():
        groups = observed.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if {rule["name"] for rule in rules} != {rule["alert"] for rule in alert_rules()}:
            return None
        if any(rule.get("lastEvaluation", "").startswith("0001") for rule in rules):
            return None  # not evaluated yet
        active = {alert["labels"]["alertname"]: alert["state"] for alert in observed.api("alerts")["alerts"]}
        return (rules, active) if active.get("TokenLedgerDeadLetters") == "firing" else None

    rules, active = eventually("the dead-letter alert fires", alerts_settled)
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
    assert active == {"TokenLedgerDeadLetters": "firing"}, f"a healthy worker raises only what happened: {active}"
