"""The Grafana dashboard and the Prometheus alert rules in etc/monitoring/ use only metrics a
real hub exports: every expression is checked against a scrape of ``/metrics``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

MONITORING = Path(__file__).resolve().parents[2] / "etc" / "monitoring"
DASHBOARD = MONITORING / "yurthub-dashboard.json"
ALERTS = MONITORING / "yurthub-alerts.yml"

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "bool", "offset", "inf", "nan",
             # aggregation operators, which may take their "by (...)" before the parenthesis
             "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
             "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
             "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("", "_sum", "_count", "_created"), "untyped": ("",)}


def exported(exposition: str) -> set[str]:
    """Every series name a scrape can hold: samples, and the names of declared families
    (a labelled counter has no sample until it is first counted)."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            if kind == "counter":  # prometheus-client 0.16 names the family without _total
                family = family.removesuffix("_total")
            names |= {family + s for s in _SUFFIXES[kind]}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, label names,
    label values, durations and Grafana variables left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # string literals
    e = re.sub(r"\$\{?\w+\}?", "", e)                      # Grafana variables
    e = re.sub(r"\{[^}]*\}", "", e)                        # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                       # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        rest = e[m.end():].lstrip()
        if rest.startswith("("):
            continue                                       # a function
        if m.group(0).lower() in _KEYWORDS:
            continue
        if m.start() > 0 and (e[m.start() - 1].isdigit() or e[m.start() - 1] == "."):
            continue                                       # 1e3, 0.10
        names.add(m.group(0))
    return names


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = [(f"panel {p['title']!r}", t["expr"]) for p in dash["panels"] for t in p["targets"]]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            out.append((f"variable {var['name']}",
                        re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", q)))
    return out


def alert_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [(f"alert {r['alert']}", r["expr"]) for g in doc["groups"] for r in g["rules"]]


def test_the_checker_finds_metric_names_and_only_them():
    assert metric_names('sum by (instance, client) (rate(yurthub_requests_total{code=~"5.."}'
                        '[$__rate_interval])) > 0.2') == {"yurthub_requests_total"}
    assert metric_names("a / b < 0.10 and on (instance) max by (x) (c) == 1 or vector(0)") \
        == {"a", "b", "c"}
    assert metric_names('count(x{instance=~"$instance"} == 0) or vector(1e3)') == {"x"}


def test_files_are_well_formed():
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and dash["uid"] and dash["title"]
    cells = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {p['title']!r} overlaps another"
        cells |= mine
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"])
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    assert len({r["alert"] for r in rules}) == len(rules)
    for r in rules:
        assert r["labels"]["severity"] in ("critical", "warning", "info"), r["alert"]
        assert r["annotations"]["summary"], r["alert"]
        assert r["expr"].count("(") == r["expr"].count(")"), r["alert"]


@pytest.fixture
def scraped(sandbox, hub) -> set[str]:
    """A real hub's /metrics after it served, cached and answered from its cache."""
    assert hub.get("/api/v1/pods")[0] == 200
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet") == 6,
             what="pods cached")
    code, _, body = http(hub.hub_url + "/metrics")
    assert code == 200
    return exported(body.decode())


def test_every_expression_names_metrics_the_hub_exports(scraped):
    exprs = dashboard_exprs() + alert_exprs()
    assert len(exprs) > 20
    used = set()
    for where, expr in exprs:
        names = metric_names(expr)
        assert names, f"{where}: {expr!r} names no metric"
        missing = names - scraped
        assert not missing, f"{where} uses {sorted(missing)}, which the hub does not export"
        used |= names
    # And they cover what an operator of edge nodes watches.
    for name in ("node_yurthub_server_healthy_status", "yurthub_cache_view_incomplete",
                 "yurthub_cache_view_stale", "yurthub_cache_disk_free_bytes",
                 "yurthub_cache_write_errors_total", "yurthub_requests_total",
                 "yurthub_node_autonomy", "yurthub_cache_stopped",
                 "yurthub_certificate_renewal_timestamp_seconds",
                 "yurthub_certificate_expiration_timestamp_seconds"):
        assert name in used
    # The check can fail: a misspelt metric is caught.
    assert metric_names("rate(yurthub_request_total[5m])") - scraped == {"yurthub_request_total"}


def test_caching_stopped_for_any_reason_fires_an_alert_and_shows_on_the_dashboard():
    """A full, out-of-inodes or read-only cache disk stops caching without a write error
    (yurthub_cache_write_errors_total stays 0) while the disk may look mostly free: no rule
    fired for a node whose cache had stopped ageing into uselessness."""
    from yurthub.cache.space import REASONS
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]
             if "yurthub_cache_stopped" in metric_names(r["expr"])]
    assert rules, "no alert rule watches yurthub_cache_stopped"
    for r in rules:
        assert not re.search(r"yurthub_cache_stopped\s*\{[^}]*reason", r["expr"]), r["expr"]
        assert "reason" in r["expr"] and "{{ $labels.reason }}" in r["annotations"]["summary"]
        text = r["annotations"]["description"]
        assert all(reason in text for reason in REASONS), (REASONS, text)
    writes = next(r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]
                  if r["alert"] == "YurthubCacheWriteErrors")
    assert "not counted here" in writes["annotations"]["description"]
    assert any("yurthub_cache_stopped" in metric_names(e) for _, e in dashboard_exprs())
