"""The Grafana dashboard and the Prometheus example (ops/) name only metrics and labels that the
servers expose (supportbot/metrics.py), so no panel stays empty after a rename."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Iterator, Set

import yaml
from prometheus_client import REGISTRY

from supportbot import metrics

OPS = Path(__file__).resolve().parents[2] / "ops"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "info": ("_info",), "gauge": ("",)}
# Labels Prometheus adds to every series, and the bucket label of histograms.
PROMETHEUS_LABELS = {"job", "instance", "le"}
NAME = re.compile(r"\b((?:supportbot|process)_[a-z_]+)\b")
# `by (a, b)` and the label of a `{label=~"..."}` matcher.
GROUPING = re.compile(r"\bby \(([^)]*)\)")
MATCHER = re.compile(r"[{,]\s*([a-z_]+)\s*(?:=~|!~|!=|=)")


def exposed() -> Dict[str, Set[str]]:
    """Every sample name the servers can expose, with its labels."""
    names: Dict[str, Set[str]] = {}
    for metric in {id(m): m for group in metrics.SERVER_METRICS.values() for m in group}.values():
        for family in metric.describe():
            labels = set(metric._labelnames) | ({"model_id", "model_file"} if family.type == "info" else set())
            for suffix in SUFFIXES[family.type]:
                names[family.name + suffix] = labels
    for family in REGISTRY.collect():  # the process collector prometheus_client registers
        if family.name.startswith("process_"):
            for sample in family.samples:
                names[sample.name] = set()
    return names


def expressions(dashboard: dict) -> Iterator[str]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


def test_every_panel_queries_metrics_and_labels_that_exist() -> None:
    dashboard = json.loads((OPS / "grafana" / "supportbot.json").read_text())
    known = exposed()
    used: Set[str] = set()
    for expr in expressions(dashboard):
        names = NAME.findall(expr)
        assert names, f"a panel queries no metric of ours: {expr}"
        for name in names:
            assert name in known, f"{name} is not exposed by any server ({expr})"
            used.add(name)
        labels = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",")}
        labels |= set(MATCHER.findall(expr))
        allowed = set.union(*(known[name] for name in names)) | PROMETHEUS_LABELS
        assert labels <= allowed, f"unknown labels {labels - allowed} in {expr}"
    # The list: turns, latency, errors, handoffs, fallbacks, model version.
    for wanted in ("supportbot_turns_total", "supportbot_turn_duration_seconds_bucket", "supportbot_errors_total",
                   "supportbot_handoffs_total", "supportbot_fallbacks_total", "supportbot_model_info"):
        assert wanted in used, f"no panel shows {wanted}"


def test_the_dashboard_imports_with_any_prometheus_data_source() -> None:
    dashboard = json.loads((OPS / "grafana" / "supportbot.json").read_text())
    assert dashboard["uid"] == "supportbot" and dashboard["id"] is None
    (variable,) = dashboard["templating"]["list"]
    assert variable == {**variable, "name": "datasource", "type": "datasource", "query": "prometheus"}
    sources = {json.dumps(p.get("datasource"), sort_keys=True) for p in dashboard["panels"] if p["type"] != "row"}
    assert sources == {json.dumps({"type": "prometheus", "uid": "${datasource}"}, sort_keys=True)}
    assert len({p["title"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_the_prometheus_example_scrapes_each_server_once() -> None:
    config = yaml.safe_load((OPS / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"supportbot-rasa", "supportbot-actions", "supportbot-billing"}
    targets = [t for job in jobs.values() for c in job["static_configs"] for t in c["targets"]]
    assert sorted(targets) == ["127.0.0.1:5005", "127.0.0.1:5055", "127.0.0.1:5056"]
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in jobs.values())
