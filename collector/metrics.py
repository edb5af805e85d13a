"""The collector's Prometheus metrics (prometheus-client), one registry per collector instance.

docs/operations.md explains each; the names follow Prometheus conventions (`_total` counters,
`_seconds` durations).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class CollectorMetrics:
    """Every metric the collector exposes on /metrics."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.readings_in = Counter(
            "jieshui_readings_in_total", "Readings accepted into the buffer", ["source"], registry=r
        )
        self.points_written = Counter("jieshui_points_written_total", "Lines InfluxDB confirmed", registry=r)
        self.dead_letters = Counter(
            "jieshui_dead_letters_total", "Inputs refused by the pipeline", ["reason"], registry=r
        )
        self.duplicates = Counter(
            "jieshui_duplicates_total", "MQTT messages already counted (dropped)", registry=r
        )
        self.late = Counter(
            "jieshui_late_readings_total", "Readings older than one already counted", registry=r
        )
        self.meter_events = Counter(
            "jieshui_meter_events_total", "Totalizer rollovers and resets", ["event"], registry=r
        )
        self.buffer_depth = Gauge("jieshui_buffer_depth", "Lines waiting for InfluxDB", registry=r)
        self.buffer_age = Gauge(
            "jieshui_buffer_oldest_age_seconds", "Age of the oldest line waiting for InfluxDB", registry=r
        )
        self.buffer_disk_full = Gauge(
            "jieshui_buffer_disk_full",
            "1 while the buffer's disk is full and readings are refused",
            registry=r,
        )
        self.unclean_stops = Counter(
            "jieshui_unclean_stops_total",
            "Runs of this collector (on this buffer) that ended without a clean stop",
            registry=r,
        )
        self.buffer_full = Counter(
            "jieshui_buffer_full_total", "Batches refused because the buffer was full", ["source"], registry=r
        )
        self.write_seconds = Histogram(
            "jieshui_write_seconds", "Duration of a write to InfluxDB", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )  # fmt: skip
        self.write_errors = Counter(
            "jieshui_write_errors_total", "Failed writes to InfluxDB", ["kind"], registry=r
        )
        self.device_last_seen = Gauge(
            "jieshui_device_last_seen_timestamp_seconds",
            "When a device last answered",
            ["device"],
            registry=r,
        )
        self.device_cycle = Gauge(
            "jieshui_device_cycle_seconds", "Duration of a device's last poll", ["device"], registry=r
        )
        self.device_lateness = Gauge(
            "jieshui_device_lateness_seconds", "How late a device's last poll started after its slot",
            ["device"], registry=r,
        )  # fmt: skip
        self.device_errors = Counter(
            "jieshui_device_errors_total", "Failed polls", ["device", "reason"], registry=r
        )
        self.mqtt_connected = Gauge("jieshui_mqtt_connected", "1 while connected to the broker", registry=r)
        self.mqtt_disconnects = Counter(
            "jieshui_mqtt_disconnects_total", "Connections to the broker lost, or refused by it", registry=r
        )
