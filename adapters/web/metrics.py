"""Prometheus metrics. Under gunicorn, PROMETHEUS_MULTIPROC_DIR makes every worker's samples count."""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

DECISIONS = Counter("creditctl_decisions_total", "Decisions made, by outcome", ["outcome"])
DECISION_REASONS = Counter(
    "creditctl_decision_reasons_total", "Matched rule reasons of decisions", ["reason"]
)
REPLAYS = Counter("creditctl_decision_replays_total", "Replays of an already decided order id")
# Decisions made in one transaction with other orders for their account, by whichever request held the
# account's turn in its process (creditctl.ports.turns): against creditctl_decisions_total, how often
# a busy account's orders were decided together.
DECIDED_TOGETHER = Counter(
    "creditctl_decisions_together_total",
    "Decisions made in one transaction with other orders for the account",
)
DECISION_SECONDS = Histogram(
    "creditctl_decision_seconds",
    "Time to decide one order (including any balance fetch)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
HTTP_REQUESTS = Counter("creditctl_http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
_CHILDREN: dict[tuple[Any, ...], Any] = {}  # labelled children: labels() locks and builds a key per call
MAX_CHILDREN = 4096  # routes x methods x statuses seen; past it, labels() is asked each time

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, content_type=CONTENT_TYPE_LATEST)  # mimetype= would add a second charset


def _child(metric: Any, *values: str) -> Any:
    """metric.labels(*values), kept: prometheus_client builds the key and takes a lock on every call."""
    key = (metric, *values)
    child = _CHILDREN.get(key)
    if child is None:
        child = metric.labels(*values)
        if len(_CHILDREN) < MAX_CHILDREN:
            _CHILDREN[key] = child
    return child


def http_requests(method: str, endpoint: str, status: int) -> Any:
    """The creditctl_http_requests_total child for one request's labels."""
    return _child(HTTP_REQUESTS, method, endpoint, str(status))


def count_decision(outcome: str, reasons: list[str]) -> None:
    _child(DECISIONS, outcome).inc()
    for reason in reasons:
        _child(DECISION_REASONS, reason).inc()
