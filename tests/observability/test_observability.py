"""The operators' monitoring kit in deploy/: the Grafana dashboard and the Prometheus alert rules
use only metrics the running resolver exposes on /metrics, their PromQL parses
(`promtool check rules`), and the alerts fire when they should (`promtool test rules`).

promtool comes with Debian's `prometheus` package (tests/install-system-deps.sh installs it);
where it cannot be installed the promtool tests skip and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support.authority import Authority
from support.resolver_proc import ResolverFactory, free_port

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "safe-resolver.json"
RULES = REPO / "deploy" / "prometheus" / "safe-resolver.rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "safe-resolver.rules.test.yml"
METRIC = re.compile(r"\b(?:safe_resolver|process)_[a-z0-9_]+\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count")}  # fmt: skip


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip(
            "promtool not installed (Debian package prometheus; tests/install-system-deps.sh)"
        )
    return found


@pytest.fixture(scope="module")
def exposed(
    _session_authority: Authority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[set[str]]:
    """Every metric name the running resolver's /metrics offers (two workers, a query log,
    a mandated list), with the sample suffixes of each family's type."""
    folder = tmp_path_factory.mktemp("observability")
    (folder / "mandated.txt").write_text("banned.w.example.org\n")
    (folder / "policy.yaml").write_text(
        "version: 1\nclients: {default: kids}\nprofiles: {kids: {age: 11-14}}\n"
        f"mandated: {{sources: [{{id: gov, path: {folder / 'mandated.txt'}, format: domains}}]}}\n"
        "lists: {dir: lists, catalogue_sources: false}\n"
    )
    admin = free_port()
    factory = ResolverFactory(folder)
    rp = factory(
        [_session_authority.address],
        policy=str(folder / "policy.yaml"),
        workers=2,
        admin={"listen": [f"127.0.0.1:{admin}"]},
        querylog={"path": str(folder / "q.sqlite")},
    )
    rp.query("banned.w.example.org")
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    yield names
    problems = factory.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems))


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [str(r["expr"]) for g in rules["groups"] for r in g["rules"]]


def test_the_dashboard_is_a_loadable_grafana_dashboard() -> None:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["uid"] == "safe-resolver" and board["schemaVersion"] >= 36
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "instance"}
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [p for p in board["panels"] if p["type"] != "row"]
    assert len(graphs) >= 25
    for panel in graphs:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'instance=~"$instance"' in target["expr"], target["expr"]
    # rows and panels tile the grid without overlapping
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}  # fmt: skip
        assert not cells & area, panel["title"]
        cells |= area


def test_every_dashboard_and_alert_metric_is_on_our_metrics_page(exposed: set[str]) -> None:
    used = {name for expr in dashboard_exprs() + rule_exprs() for name in METRIC.findall(expr)}
    assert used - exposed == set()
    # the kit watches what the issue asks for
    wanted = {
        "safe_resolver_upstream_healthy", "safe_resolver_reload_last_success",
        "safe_resolver_list_rules", "safe_resolver_querylog_dropped_total",
        "safe_resolver_event_loop_lag_seconds", "safe_resolver_process_resident_memory_bytes",
        "safe_resolver_process_open_fds", "safe_resolver_mandated_hits_total",
    }  # fmt: skip
    assert wanted <= used


def test_the_alert_rules_pass_promtool(tmp_path: Path) -> None:
    tool = promtool()
    done = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(
        [tool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_the_dashboards_promql_parses(tmp_path: Path) -> None:
    """Each panel expression, Grafana's variables filled in, as a recording rule for promtool."""
    tool = promtool()
    exprs = [e.replace("$__rate_interval", "5m").replace("$instance", ".*")
             for e in dashboard_exprs()]  # fmt: skip
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr{i}", "expr": e} for i, e in enumerate(exprs)
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout
