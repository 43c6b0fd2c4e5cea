"""Metric names: those the daemon exports, and those a PromQL expression refers to."""

from __future__ import annotations

import re

from mm_daemon.engine.metrics import Metrics

_METRIC = re.compile(r"\b((?:mm|process|python)_[a-zA-Z0-9_]*)")


def exported_metric_names() -> set[str]:
    """Every sample name a fresh daemon registry can expose (counters with _total, ...)."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        base = family.name
        if family.type == "counter":
            names |= {f"{base}_total", f"{base}_created"}
        elif family.type == "histogram":
            names |= {f"{base}_bucket", f"{base}_count", f"{base}_sum", f"{base}_created"}
        elif family.type == "info":
            names.add(f"{base}_info")
        else:
            names.add(base)
    return names


def metric_names_in(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))
