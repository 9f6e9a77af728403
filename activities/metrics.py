"""Prometheus metrics of the worker and the webhook app (``prometheus-client``, one registry per process).

Labels are bounded: journey and step names come from the journey classes, channels and outcomes
from enums, providers from the registry, reasons from the policy's fixed set; no customer, order
or message id is ever a label.

Served at ``/metrics`` on ``JOURNEYS_METRICS_PORT`` (worker) and ``JOURNEYS_WEBHOOK_METRICS_PORT``
(webhook app) by :func:`serve_metrics`. Journeys count their starts and ends through
:func:`count_journey`, called from workflow code only when not replaying.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.exposition import generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

SENDS = Counter(
    "journeys_sends",
    "Send attempts that reached an outcome, by journey, step, channel, provider and outcome",
    ["journey", "step", "channel", "provider", "outcome"],
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "journeys_fallbacks",
    "Sends on a step's later channel after an earlier one failed, by journey, step and channel",
    ["journey", "step", "channel"],
    registry=REGISTRY,
)
SKIPPED = Counter(
    "journeys_skipped",
    "Sends the contact policy or the profile ruled out, by journey, channel and reason",
    ["journey", "channel", "reason"],
    registry=REGISTRY,
)
DEFERRED = Counter(
    "journeys_deferred",
    "Sends put off (quiet hours, frequency cap, priority grace), by journey, channel and reason",
    ["journey", "channel", "reason"],
    registry=REGISTRY,
)
RESENDS = Counter(
    "journeys_resends",
    "Operators' resends, by journey, step and channel",
    ["journey", "step", "channel"],
    registry=REGISTRY,
)
RECEIPT_LATENCY = Histogram(
    "journeys_receipt_latency_seconds",
    "From a message's send to its delivery receipt, by provider, channel and status",
    ["provider", "channel", "status"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 6 * 3600, 24 * 3600),
    registry=REGISTRY,
)
JOURNEYS = Counter(
    "journeys_journeys",
    "Journeys started, completed and exited (by an exit event or an operator), by journey",
    ["journey", "event"],
    registry=REGISTRY,
)
WEBHOOK_REQUESTS = Counter(
    "journeys_webhook_requests",
    "Requests to the webhook app, by route, provider and HTTP status",
    ["route", "provider", "status"],
    registry=REGISTRY,
)

_LABEL_MAX = 64


def label(value: object) -> str:
    """A label value: short, printable (a journey's own step names are bounded, but not by us)."""
    text = str(value) if value is not None else ""
    return "".join(c if c.isprintable() else "?" for c in text[:_LABEL_MAX])


def count_journey(journey: str, event: str) -> None:
    """A journey ``started``, ``completed`` or ``exited`` (workflow code calls it when not replaying)."""
    JOURNEYS.labels(label(journey), event).inc()


def exposition() -> bytes:
    """The metrics in Prometheus' text format."""
    return generate_latest(REGISTRY)


_served: dict[tuple[str, int], Any] = {}
_lock = threading.Lock()


def serve_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Serve ``/metrics`` on ``host:port`` in a daemon thread (once per address); the port it listens on.

    Args:
        port: the port (0: any free port).
        host: the interface; the default keeps metrics off the network.
    """
    with _lock:
        if (host, port) in _served and port:
            return port
        server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
        bound = int(server.server_port)
        _served[(host, bound)] = server
        return bound
