"""Logging and metrics shared by the handlers.

Metrics go out as CloudWatch EMF through Powertools' EMF provider, but each invocation records into its own
`MetricsRecorder` instead of the `Metrics` class-level store: the local stack runs several handlers in one process
on several threads, and per-invocation recorders need no locks and leak nothing between invocations. Logs carry
ids (event, directory, user, group), never names, emails, signature headers or secrets.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from shared.resources import DEFAULT_METRICS_NAMESPACE


def get_logger(service: str) -> Logger:
    return Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", service))


@dataclass
class MetricsRecorder:
    """Counts and measurements of one invocation, flushed as one EMF document per dimension set."""

    service: str
    namespace: str = field(default_factory=lambda: os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "")
    _values: dict[tuple[tuple[str, str], ...], dict[tuple[str, str], list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )

    def __post_init__(self) -> None:
        self.namespace = self.namespace or DEFAULT_METRICS_NAMESPACE

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        self.record(name, value, "Count", **dimensions)

    def record(self, name: str, value: float, unit: str, **dimensions: str) -> None:
        self._values[tuple(sorted(dimensions.items()))][(name, unit)].append(float(value))

    def total(self, name: str, **dimensions: str) -> float:
        """Sum recorded for `name` with exactly these dimensions (for tests and reports)."""
        series = self._values.get(tuple(sorted(dimensions.items())), {})
        return sum(value for (metric, _), values in series.items() if metric == name for value in values)

    def flush(self) -> None:
        for dimensions, series in self._values.items():
            provider = AmazonCloudWatchEMFProvider(namespace=self.namespace, service=self.service)
            for dimension, dimension_value in dimensions:
                provider.add_dimension(name=dimension, value=dimension_value)
            for (metric, unit), values in series.items():
                # Counts are summed; measurements keep their distribution (EMF takes up to 100 values a metric).
                for value in [sum(values)] if unit == "Count" else values[:100]:
                    provider.add_metric(name=metric, unit=unit, value=value)
            provider.flush_metrics()
        self._values.clear()
