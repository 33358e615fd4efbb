"""hybrid_sessions' metrics in prometheus_client (docs/signals.rst shows this file as it is).

Register it once, in an ``AppConfig.ready()``::

    from hybrid_sessions import metrics
    metrics.register(PrometheusRecorder())

and expose ``prometheus_client``'s registry as usual (``start_http_server``,
``make_wsgi_app``, django-prometheus' ``/metrics`` view...).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from hybrid_sessions import metrics

#: Buckets that fit what each histogram measures.
BUCKETS: dict[str, tuple[float, ...]] = {
    metrics.COOKIE_BYTES: (256, 512, 1024, 1536, 2048, 3072, 4096),
    metrics.STORE_OPERATIONS: (0, 1, 2, 3, 4, 6, 10),
    metrics.FEED_LAG: (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
}


class PrometheusRecorder:
    """A :class:`hybrid_sessions.metrics.Recorder` over prometheus_client's instruments."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.counters: dict[str, Counter] = {}
        self.histograms: dict[str, Histogram] = {}
        self.gauges: dict[str, Gauge] = {}
        for name, (kind, labels, description) in metrics.NAMES.items():
            if kind == "counter":
                self.counters[name] = Counter(name, description, labels, registry=registry)
            elif kind == "histogram":
                self.histograms[name] = Histogram(
                    name, description, labels, buckets=BUCKETS[name], registry=registry
                )
            else:
                self.gauges[name] = Gauge(name, description, labels, registry=registry)

    def counter(self, name: str, value: float = 1, **labels: str) -> None:
        counter = self.counters[name]
        (counter.labels(**labels) if labels else counter).inc(value)

    def histogram(self, name: str, value: float, **labels: str) -> None:
        histogram = self.histograms[name]
        (histogram.labels(**labels) if labels else histogram).observe(value)

    def gauge(self, name: str, value: float, **labels: str) -> None:
        gauge = self.gauges[name]
        (gauge.labels(**labels) if labels else gauge).set(value)
