"""Checks of the chart's Grafana dashboard and PrometheusRule (used by check.py).

The dashboard must be JSON with at least one panel, and every metric name that a panel or
an alert rule queries must be one the node really exports. The node's families are read
from a real `tether serve` (single node, ports 0, a temporary data dir) and its /metrics.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

# Series a family of each type exposes (OpenMetrics text).
SUFFIXES = {
    "counter": ["_total"],
    "gauge": [""],
    "histogram": ["_bucket", "_sum", "_count"],
    "info": ["_info"],
}
METRIC = re.compile(r"\b(tether_[a-z0-9_]+)")


def exported_series(tether: Path) -> set[str]:
    """Every series name the node's /metrics can show, from a running node."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "tether.toml"
        cfg.write_text(
            f'[node]\nid = 1\ndata_dir = "{tmp}/data"\n'
            '[listen]\nclient = "127.0.0.1:0"\nadmin = "127.0.0.1:0"\npeer = "127.0.0.1:0"\n'
        )
        # TETHER_* variables are config overrides; the check's own would stop the node.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        node = subprocess.Popen(
            [str(tether), "serve", "--config", str(cfg)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        try:
            admin = None
            deadline = time.monotonic() + 30
            while admin is None and time.monotonic() < deadline:
                line = node.stdout.readline() if node.stdout else ""
                if not line:
                    break
                m = re.search(r"admin=(\S+)", line)
                if line.startswith("tether listening") and m:
                    admin = m.group(1)
            if admin is None:
                raise RuntimeError("the node never printed its admin address")
            text = ""
            while time.monotonic() < deadline and "# TYPE" not in text:
                try:
                    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
                        text = r.read().decode()
                except OSError:
                    time.sleep(0.2)
        finally:
            node.terminate()
            try:
                node.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node.kill()
    series = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            for suffix in SUFFIXES.get(parts[3], [""]):
                series.add(parts[2] + suffix)
    if not series:
        raise RuntimeError("the node's /metrics listed no families")
    return series


def queried(docs: list[tuple[str, dict]]) -> tuple[dict[str, set[str]], list[str]]:
    """Metric names queried by the dashboard and the rule, by where; and problems found."""
    names: dict[str, set[str]] = {}
    problems = []
    for _, doc in docs:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name", "")
        if kind == "ConfigMap" and "tether.json" in (doc.get("data") or {}):
            try:
                dash = json.loads(doc["data"]["tether.json"])
            except json.JSONDecodeError as e:
                problems.append(f"{name}: tether.json is not JSON: {e}")
                continue
            panels = dash.get("panels") or []
            if not panels:
                problems.append(f"{name}: the dashboard has no panels")
            for p in panels:
                for t in p.get("targets", []):
                    names.setdefault(f"dashboard panel {p.get('title')!r}", set()).update(
                        METRIC.findall(t.get("expr", "")))
        if kind == "PrometheusRule":
            for g in doc.get("spec", {}).get("groups", []):
                for rule in g.get("rules", []):
                    found = set(METRIC.findall(rule.get("expr", "")))
                    if not found:
                        problems.append(f"{name}: rule {rule.get('alert')} queries no tether metric")
                    names.setdefault(f"alert {rule.get('alert')}", set()).update(found)
    return names, problems


def check(docs: list[tuple[str, dict]], exported: set[str]) -> list[str]:
    """Problems with the rendered dashboard and rule against what the node exports."""
    names, problems = queried(docs)
    for where, used in sorted(names.items()):
        for metric in sorted(used - exported):
            problems.append(f"{where} queries {metric}, which the node does not export")
    return problems
