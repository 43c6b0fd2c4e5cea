"""Metric names: those the daemon exports, and those a PromQL expression refers to."""

from __future__ import annotations

import re

from prometheus_client.metrics import MetricWrapperBase

from mm_daemon.engine.metrics import Metrics

_METRIC = re.compile(r"\b((?:mm|process|python)_[a-zA-Z0-9_]*)")


def exported_metric_names(label: str | None = None) -> set[str]:
    """Every sample name a daemon registry exposes once each labelled metric has a child;
    with `label`, only those of the metrics that carry that label.

    Taken from real exposition rather than naming rules: a histogram with negative buckets
    (markouts), for one, has no `_sum` series.
    """
    metrics = Metrics()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase) and value._labelnames:
            value.labels(*["x"] * len(value._labelnames))
    return {
        sample.name
        for family in metrics.registry.collect()
        for sample in family.samples
        if label is None or label in sample.labels
    }


def metric_names_in(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))
