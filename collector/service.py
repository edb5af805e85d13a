"""The collector process: inputs -> pipeline -> durable buffer -> InfluxDB, with health and metrics.

One asyncio loop runs a poller per Modbus device, the MQTT subscription, the processor (which turns
inputs into points with the pure pipeline and commits them to the buffer in batches, then acknowledges
the MQTT messages it stored), the drainer (buffer -> InfluxDB, deleting only what InfluxDB confirmed)
and a health task writing `collector_health`. /healthz and /metrics are served from a small HTTP
server thread. Bad input never stops it: every refusal is a dead letter, every fault a metric.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import threading
import time
from collections import Counter as Tally
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from collector.buffer import RESERVE_BYTES, Buffer, BufferDiskFull, BufferFull
from collector.metrics import CollectorMetrics
from collector.pipeline import (
    DeadLetter,
    DeviceRef,
    DeviceState,
    Limits,
    Reading,
    process_modbus,
    process_mqtt,
)
from collector.sources.modbus import Backoff, DevicePoller, ModbusLink, PollResult
from collector.sources.mqtt import Incoming, MqttOptions, MqttSource, deliver_to
from devices.profile import find_profile
from evidence.meters import swaps_of
from jieshui.errors import DatabaseNotFoundError, JieshuiError, StoreError
from jieshui.inventory import ModbusRtu, ModbusTcp, Mqtt, Site
from jieshui.settings import MqttEndpoint
from store.influx import InfluxConfig, InfluxStore
from store.inventory_points import inventory_lines
from store.lineprotocol import LineProtocolError, Point

log = logging.getLogger("jieshui.collector")
NS = 10**9


class CollectorConfig(BaseModel):
    """Everything the collector needs besides the inventory and the InfluxDB connection."""

    model_config = ConfigDict(frozen=True)

    collector_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    buffer_path: Path
    buffer_max_lines: int = Field(default=5_000_000, gt=0)
    buffer_sync: str = "FULL"
    buffer_reserve_bytes: int = Field(default=RESERVE_BYTES, ge=0)  # released when the disk fills
    batch_lines: int = Field(default=5000, gt=0)  # lines per write to InfluxDB
    writes_in_flight: int = Field(default=2, ge=1, le=8)  # writes to InfluxDB at once
    flush_interval_s: float = Field(default=1.0, gt=0)  # longest a line waits when traffic is low
    modbus_timeout_s: float = Field(default=2.0, gt=0)
    modbus_retries: int = Field(default=1, ge=0)
    poll_interval_s: float | None = Field(default=None, gt=0)  # overrides every device's interval
    health_host: str = "127.0.0.1"
    health_port: int = Field(default=9108, ge=0, le=65535)  # 0: a free port
    health_interval_s: float = Field(default=10.0, gt=0)
    device_health_interval_s: float = Field(default=60.0, gt=0)  # `device_health` points, per device
    only: tuple[str, ...] = ()  # community ids; empty: all
    mqtt_share_group: str | None = None
    mqtt_session_expiry_s: int = Field(default=7 * 86400, ge=0)
    mqtt_keepalive_s: int = Field(default=30, ge=2)
    mqtt_ca_file: str | None = None
    limits: Limits = Field(default_factory=Limits)


@dataclass
class _DeviceSeen:
    """What the collector saw of one device lately: the figures `device_health` records."""

    ref: DeviceRef
    interval_s: float  # how often it should be heard from
    last_seen_ns: int = 0  # last answer or message; 0: none since the collector started
    poll_lateness_s: float | None = None
    poll_cycle_s: float | None = None
    failed_polls: int = 0
    last_seen_gauge: Gauge | None = None  # its `jieshui_device_last_seen_timestamp_seconds` child


@dataclass
class _Write:
    """A batch on its way to InfluxDB."""

    rows: list[tuple[int, str]]  # (buffer id, line)
    started: float
    future: asyncio.Future[None]


async def _settle(inflight: collections.deque[_Write]) -> None:
    """Wait for the writes in flight, whatever their outcome (their lines stay buffered)."""
    await asyncio.gather(*(w.future for w in inflight), return_exceptions=True)
    inflight.clear()


@dataclass
class _Batch:
    lines: list[str] = field(default_factory=list)
    states: dict[str, DeviceState] = field(default_factory=dict)
    counts: Tally[str] = field(default_factory=Tally)
    acks: list[tuple[int, int]] = field(default_factory=list)


class Collector:
    """One collector instance for a site (or some of its communities)."""

    def __init__(
        self, site: Site, config: CollectorConfig, influx: InfluxConfig, broker: MqttEndpoint | None
    ) -> None:
        self.site = site
        self.config = config
        self.influx = influx
        self.broker = broker
        self.metrics = CollectorMetrics()
        self.buffer = Buffer(
            config.buffer_path, config.buffer_max_lines, config.buffer_sync, config.buffer_reserve_bytes
        )
        # read at every scrape: the gauge cannot disagree with the buffer (or with /healthz)
        self.metrics.buffer_disk_full.set_function(lambda: float(self.buffer.disk_full_since is not None))
        self.states = self.buffer.states()
        self.devices: dict[str, DeviceRef] = {}
        self._seen: dict[str, _DeviceSeen] = {}
        self._write_s: list[float] = []  # durations of the writes since the last health point
        self.points_written = 0
        self._started_ns = time.time_ns()
        self.topics: dict[str, DeviceRef] = {}
        self._modbus: list[tuple[DeviceRef, ModbusTcp | ModbusRtu, float]] = []
        for district, community in site.communities():
            if config.only and community.id not in config.only:
                continue
            for _, device in community.devices():
                ref = DeviceRef(
                    district.id, community.id, device.id, find_profile(device.profile), config.collector_id,
                    swaps_of(device),  # the inventory's replacements: deltas across a swap from its readings
                )  # fmt: skip
                self.devices[ref.key] = ref
                conn = device.connection
                if isinstance(conn, Mqtt):
                    self.topics[f"jieshui/{district.id}/{community.id}/{device.id}/telemetry"] = ref
                    every_s = device.interval_s()
                else:
                    every_s = config.poll_interval_s or device.poll_interval_s
                    self._modbus.append((ref, conn, every_s))
                self._seen[ref.key] = _DeviceSeen(ref, every_s)
        self._queue: asyncio.Queue[PollResult | Incoming] | None = None
        self._wake_drainer = asyncio.Event()
        self._stop = asyncio.Event()
        self._faulty: set[str] = set()
        self._mqtt: MqttSource | None = None
        self._http: ThreadingHTTPServer | None = None
        self.last_write_ok_ns = 0
        self.last_write_error = ""
        self.writes_failing = False  # the last write to InfluxDB failed
        self.health_port = config.health_port
        self.failed = False
        self._closing = False
        self._closed = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the collector to stop (thread-safe when called through the loop)."""
        self._stop.set()

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Run until `stop()`; then flush what it can and close."""
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._start_http()
        store = InfluxStore(self.influx)
        self._begin_run()
        # the inventory facts dashboards need (docs/schema.md), written again at every start
        with contextlib.suppress(BufferFull):
            self.buffer.commit(inventory_lines(self.site, time.time_ns(), self.config.only))
        with contextlib.suppress(StoreError):  # if InfluxDB is down now, the drainer retries later
            await asyncio.to_thread(store.bootstrap)
        links: dict[str, ModbusLink] = {}
        tasks = [
            asyncio.create_task(self._process(), name="process"),
            asyncio.create_task(self._drain(store), name="drain"),
            asyncio.create_task(self._health(), name="health"),
        ]
        for task in tasks:
            task.add_done_callback(self._core_task_done)
        for ref, conn, interval in self._modbus:
            shared = isinstance(conn, ModbusRtu)
            key = f"rtu:{conn.serial_port}" if isinstance(conn, ModbusRtu) else f"tcp:{ref.key}"
            link = links.get(key)
            if link is None:
                link = links[key] = ModbusLink(conn, self.config.modbus_timeout_s, self.config.modbus_retries)
            poller = DevicePoller(ref, link, conn.unit_id, interval, self._enqueue, shared_line=shared)
            last = self.states.get(ref.key, DeviceState()).last_time_ns
            tasks.append(
                asyncio.create_task(poller.run(self._stop, first_after_ns=last), name=f"poll {ref.key}")
            )
        if self.topics and self.broker is not None:
            options = MqttOptions(
                client_id=f"jieshui-collector-{self.config.collector_id}",
                share_group=self.config.mqtt_share_group,
                session_expiry_s=self.config.mqtt_session_expiry_s,
                keepalive_s=self.config.mqtt_keepalive_s,
                ca_file=self.config.mqtt_ca_file,
            )
            self._mqtt = MqttSource(self.broker, options, deliver_to(loop, self._queue), self._mqtt_state)
            self._mqtt.start()
        log.info(
            "collector %s: %d Modbus devices, %d MQTT devices, buffer %s (%d pending), health on %s:%d",
            self.config.collector_id, len(self._modbus), len(self.topics), self.buffer.path,
            self.buffer.depth, self.config.health_host, self.health_port,
        )  # fmt: skip
        if ready is not None:
            ready.set()
        await self._stop.wait()
        if self._mqtt is not None:
            self._mqtt.stop()
        for task in tasks[3:]:
            task.cancel()
        await asyncio.gather(*tasks[3:], return_exceptions=True)
        # The core tasks end by themselves once closing: the processor when the queue is empty, the
        # drainer when the buffer is (or after a short grace: what remains waits on disk).
        self._closing = True
        self._closed.set()
        self._wake_drainer.set()
        _, pending = await asyncio.wait(tasks[:3], timeout=30)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks[:3], return_exceptions=True)
        for link in links.values():
            link.close()
        store.close()
        with contextlib.suppress(Exception):  # a full disk: the next start reports an unclean stop
            self.buffer.end_run()
        self.buffer.close()
        if self._http is not None:
            self._http.shutdown()
        log.info("collector %s stopped", self.config.collector_id)

    def _begin_run(self) -> None:
        try:
            previous_ns = self.buffer.begin_run()
        except Exception as exc:  # a full disk must not keep the collector from starting
            log.error("buffer %s: could not record this run's start: %s", self.buffer.path, exc)
            return
        self.metrics.unclean_stops.inc(self.buffer.counters().get("unclean_stops", 0))
        if previous_ns is not None:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(previous_ns / NS))
            log.warning(
                "the previous run (started %s UTC) ended without a clean stop (a crash, kill or power "
                "loss); resuming from the buffer: %d lines pending, device state as last committed",
                started, self.buffer.depth,
            )  # fmt: skip

    def _core_task_done(self, task: asyncio.Task[None]) -> None:
        # The processor, drainer and health tasks never end on their own: if one does, it is a bug;
        # say so loudly and stop, rather than keep accepting readings nobody writes.
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None and self._closing:
            return  # a normal end while shutting down
        log.critical("collector task %s ended unexpectedly: %r; stopping", task.get_name(), exc, exc_info=exc)
        self.failed = True
        self._stop.set()

    async def _enqueue(self, result: PollResult) -> None:
        assert self._queue is not None  # noqa: S101
        await self._queue.put(result)

    def _mqtt_state(self, connected: bool, why: str) -> None:
        self.metrics.mqtt_connected.set(1 if connected else 0)
        if not connected:
            self.metrics.mqtt_disconnects.inc()
        (log.info if connected else log.warning)("MQTT broker %s: %s", self.broker and self.broker.host, why)

    # -- processor ------------------------------------------------------------------------------
    async def _process(self) -> None:
        assert self._queue is not None  # noqa: S101
        queue = self._queue
        while not (self._closing and queue.empty()):
            try:
                async with asyncio.timeout(0.2):
                    first = await queue.get()
            except TimeoutError:
                continue
            items = [first]
            deadline = time.monotonic() + 0.02
            while len(items) < 1000:
                try:
                    items.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    if time.monotonic() >= deadline:
                        break
                    await asyncio.sleep(0.002)
            try:
                self._process_batch(items)
            finally:
                for _ in items:
                    queue.task_done()

    def _process_batch(self, items: list[PollResult | Incoming]) -> None:
        batch = _Batch()
        for item in items:
            if isinstance(item, PollResult):
                self._on_poll(item, batch)
            else:
                self._on_message(item, batch)
        try:
            self.buffer.commit(batch.lines, batch.states, batch.counts)
        except BufferFull as exc:
            self._on_buffer_full(items, exc)
            return
        self.states.update(batch.states)
        for name, n in batch.counts.items():
            if name.startswith("accepted_"):
                self.metrics.readings_in.labels(name.removeprefix("accepted_")).inc(n)
            elif name.startswith("dead_letter:"):
                self.metrics.dead_letters.labels(name.split(":", 1)[1]).inc(n)
            elif name == "duplicate":
                self.metrics.duplicates.inc(n)
            elif name == "late":
                self.metrics.late.inc(n)
            elif name.startswith("meter_"):
                self.metrics.meter_events.labels(name.removeprefix("meter_")).inc(n)
        if self._mqtt is not None:
            for mid, qos in batch.acks:
                self._mqtt.ack(mid, qos)
        self.metrics.buffer_depth.set(self.buffer.depth)
        self._wake_drainer.set()

    def _on_buffer_full(self, items: list[PollResult | Incoming], exc: BufferFull) -> None:
        polls = sum(1 for i in items if isinstance(i, PollResult))
        messages = [i for i in items if isinstance(i, Incoming)]
        self.metrics.buffer_full.labels("modbus").inc(polls)
        self.metrics.buffer_full.labels("mqtt").inc(len(messages))
        log.error(
            "%s: %d Modbus polls refused (the totalizers carry their volume to the next accepted poll); "
            "%d MQTT messages left unacknowledged for the broker to keep", exc, polls, len(messages),
        )  # fmt: skip
        if messages:
            loop = asyncio.get_running_loop()
            queue = self._queue
            assert queue is not None  # noqa: S101

            # try again once the drainer has made room; until then the broker holds the rest
            def requeue() -> None:
                for m in messages:
                    queue.put_nowait(m)

            loop.call_later(1.0, requeue)

    def _state(self, ref: DeviceRef, batch: _Batch) -> DeviceState:
        return batch.states.get(ref.key) or self.states.get(ref.key) or DeviceState()

    def _add(self, result: Reading | DeadLetter, batch: _Batch, source: str) -> None:
        if isinstance(result, DeadLetter):
            batch.lines.append(result.point(self.config.collector_id).to_line())
            batch.counts[f"dead_letter:{result.reason}"] += 1
            who = result.device.key if result.device else result.topic
            log.warning("dead letter from %s: %s: %s", who, result.reason, result.message)
            return
        try:
            batch.lines.extend(p.to_line() for p in result.points())
        except LineProtocolError as exc:  # a string field InfluxDB cannot hold: refuse, name it
            self._add(
                DeadLetter(result.device, result.time_ns, "encode", str(exc), repr(result.values)),
                batch,
                source,
            )
            return
        batch.counts[f"accepted_{source}"] += 1
        if result.late:
            batch.counts["late"] += 1
        for event in result.events:
            batch.counts[f"meter_{event.kind}"] += 1
            log.warning(
                "%s: %s %s from %g to %g",
                result.device.key,
                event.quantity,
                event.kind,
                event.previous,
                event.current,
            )

    def _on_poll(self, poll: PollResult, batch: _Batch) -> None:
        key = poll.device.key
        m = self.metrics
        m.device_cycle.labels(key).set(poll.cycle_s)
        m.device_lateness.labels(key).set(poll.lateness_s)
        seen = self._seen[key]
        seen.poll_cycle_s, seen.poll_lateness_s = poll.cycle_s, poll.lateness_s
        if poll.blocks is None:
            seen.failed_polls += 1
            m.device_errors.labels(key, poll.reason).inc()
            batch.counts[f"poll_error:{poll.reason}"] += 1
            if key not in self._faulty:
                self._faulty.add(key)
                log.error("%s: %s (logged once; counted while it lasts)", key, poll.error)
            # an answer that came and was refused (an exception code, another function's answer, the
            # wrong count) is data about the device: kept as a dead letter; silence is only counted
            if poll.reason in ("modbus_exception", "bad_answer") and poll.error is not None:
                dead = DeadLetter(poll.device, poll.slot_ns, poll.reason, str(poll.error), poll.error.address)
                batch.lines.append(dead.point(self.config.collector_id).to_line())
                batch.counts[f"dead_letter:{poll.reason}"] += 1
            return
        if key in self._faulty:
            self._faulty.discard(key)
            log.info("%s: answering again", key)
        self._heard_from(seen, time.time_ns())
        state = self._state(poll.device, batch)
        if poll.slot_ns <= state.last_time_ns:
            batch.counts["skipped_slot"] += 1  # a slot already stored (restart within one interval)
            return
        result, new_state = process_modbus(poll.device, state, poll.blocks, poll.slot_ns)
        if isinstance(result, Reading):
            batch.states[key] = new_state
        self._add(result, batch, "modbus")

    def _on_message(self, message: Incoming, batch: _Batch) -> None:
        batch.acks.append((message.mid, message.qos))
        ref = self.topics.get(message.topic)
        if ref is None:
            text = message.payload[:512].decode("utf-8", "replace")
            why = f"no device publishes on {message.topic}"
            dead = DeadLetter(None, message.received_ns, "unknown_topic", why, text, message.topic)
            self._add(dead, batch, "mqtt")
            return
        self._heard_from(self._seen[ref.key], message.received_ns)
        state = self._state(ref, batch)
        result, new_state = process_mqtt(
            ref, state, message.payload, message.received_ns, self.config.limits, message.topic,
            with_deltas=self.config.mqtt_share_group is None,
        )  # fmt: skip
        batch.states[ref.key] = new_state
        if result is None:
            batch.counts["duplicate"] += 1
            return
        self._add(result, batch, "mqtt")

    def _heard_from(self, seen: _DeviceSeen, now_ns: int) -> None:
        """A device answered or reported: its last-seen time, for /metrics and `device_health`."""
        if seen.last_seen_gauge is None:  # the labelled child, looked up once per device
            seen.last_seen_gauge = self.metrics.device_last_seen.labels(seen.ref.key)
        seen.last_seen_gauge.set(now_ns / NS)
        seen.last_seen_ns = now_ns

    # -- drainer --------------------------------------------------------------------------------
    async def _drain(self, store: InfluxStore) -> None:
        """Buffer -> InfluxDB, with up to `writes_in_flight` writes at once (InfluxDB takes two batches
        at once faster than one after the other: bench/bench_ingest.py). Lines leave the buffer in
        order, and only once their batch and every earlier one are confirmed; after a failure whatever
        was not confirmed is sent again (a replayed point is stored once)."""
        backoff = Backoff(base_s=0.5, cap_s=30)
        failing = False
        grace_until: float | None = None
        inflight: collections.deque[_Write] = collections.deque()
        after = 0  # the last buffer id handed to a write
        while True:
            if self._closing:
                grace_until = grace_until or time.monotonic() + 5
                if (self.buffer.depth == 0 and not inflight) or time.monotonic() > grace_until or failing:
                    await _settle(inflight)
                    return
            # while failing, one write probes InfluxDB; more would only fail alike
            while len(inflight) < (1 if failing else self.config.writes_in_flight):
                rows = self.buffer.peek(self.config.batch_lines, after)
                if not rows:
                    break
                body = "\n".join(line for _, line in rows).encode()
                future = asyncio.ensure_future(asyncio.to_thread(store.write_body, body))
                inflight.append(_Write(rows, time.monotonic(), future))
                after = rows[-1][0]
            if not inflight:
                self._wake_drainer.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.flush_interval_s):
                        await self._wake_drainer.wait()
                continue
            write = inflight.popleft()
            try:
                await write.future
            except StoreError as exc:
                await _settle(inflight)  # the later batches are sent again after this one
                after = 0
                if isinstance(exc, DatabaseNotFoundError):
                    self._write_failed(exc, "database_not_found", failing)
                    failing = True
                    with contextlib.suppress(StoreError):
                        await asyncio.to_thread(store.bootstrap)
                        # the inventory facts written at start went with the database
                        with contextlib.suppress(BufferFull):
                            self.buffer.commit(inventory_lines(self.site, time.time_ns(), self.config.only))
                        log.warning("InfluxDB database created again; inventory points queued again")
                    await asyncio.sleep(backoff.next_delay())
                elif exc.retryable or exc.status in (401, 403):
                    self._write_failed(exc, type(exc).__name__, failing)
                    failing = True
                    await asyncio.sleep(backoff.next_delay())
                else:
                    # InfluxDB refused some lines for good (a type conflict, an unparsable line): find
                    # them one by one, dead-letter them, keep the rest.
                    self._write_failed(exc, "rejected", failing=True)
                    if not await self._isolate(store, write.rows):
                        await asyncio.sleep(backoff.next_delay())  # not a busy loop over the same batch
                continue
            took = time.monotonic() - write.started
            self.metrics.write_seconds.observe(took)
            self._write_s.append(took)
            try:
                self.buffer.remove_through(write.rows[-1][0])
            except BufferDiskFull as exc:
                # written but not deleted: sent again once the disk lets us delete (stored once)
                log.error("%s; writing them again later", exc)
                await _settle(inflight)
                after = 0
                await asyncio.sleep(backoff.next_delay())
                continue
            self.metrics.points_written.inc(len(write.rows))
            self.points_written += len(write.rows)
            self.metrics.buffer_depth.set(self.buffer.depth)
            self.last_write_ok_ns = time.time_ns()
            self.writes_failing = False
            if failing:
                log.info("InfluxDB writes succeed again; %d lines pending", self.buffer.depth)
                failing = False
            backoff.reset()

    def _write_failed(self, exc: StoreError, kind: str, failing: bool) -> None:
        self.writes_failing = True
        self.metrics.write_errors.labels(kind).inc()
        self.last_write_error = str(exc)
        if not failing:
            log.error(
                "InfluxDB write failed (%s): %s; keeping %d lines and retrying", kind, exc, self.buffer.depth
            )

    async def _isolate(self, store: InfluxStore, rows: list[tuple[int, str]]) -> bool:
        """Write a refused batch line by line; dead-letter the lines refused for good and remove the
        batch in one transaction. False when that could not be done now (InfluxDB gone, disk full)."""
        good: list[int] = []
        dead: list[str] = []
        for row_id, line in rows:
            try:
                await asyncio.to_thread(store.write_body, line.encode())
            except StoreError as exc:
                if exc.retryable:
                    return False  # InfluxDB went away meanwhile: try the whole batch again later
                letter = DeadLetter(None, time.time_ns(), "store_rejected", str(exc), line)
                dead.append(letter.point(self.config.collector_id).to_line())
            good.append(row_id)
        try:
            self.buffer.replace_refused(good, dead, {"dead_letter:store_rejected": len(dead)})
        except BufferFull as exc:
            log.error("%s; isolating the refused lines again later", exc)
            return False
        self.metrics.dead_letters.labels("store_rejected").inc(len(dead))
        return True

    # -- health ---------------------------------------------------------------------------------
    def health(self, oldest_age_s: float | None = None) -> dict[str, object]:
        """The state /healthz reports and `collector_health` records (`oldest_age_s`: the buffer's,
        when the caller already looked it up)."""
        age = self.buffer.oldest_age_s() if oldest_age_s is None else oldest_age_s
        self.metrics.buffer_age.set(age)
        silent = sorted(self._faulty)
        disk_full = self.buffer.disk_full_since is not None
        status = (
            "ok" if age < 300 and not silent and not self.writes_failing and not disk_full else "degraded"
        )
        return {
            "status": status,
            "collector": self.config.collector_id,
            "buffer_depth": self.buffer.depth,
            "buffer_oldest_age_s": round(age, 3),
            "last_write_ok_ns": self.last_write_ok_ns,
            "last_write_error": self.last_write_error,
            "failing_devices": silent,
            "mqtt_connected": bool(self._mqtt and self._mqtt.connected),
            "buffer_disk_full": disk_full,
            "writes_failing": self.writes_failing,
            "devices": len(self.devices),
        }

    async def _health(self) -> None:
        next_devices = time.monotonic()
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.health_interval_s):
                    await self._closed.wait()
            if self._closing:
                return
            lines = [self._health_point().to_line()]
            if time.monotonic() >= next_devices:
                next_devices = time.monotonic() + self.config.device_health_interval_s
                lines.extend(p.to_line() for p in self.device_health_points(time.time_ns()))
            with contextlib.suppress(BufferFull):
                self.buffer.commit(lines)

    def device_health_points(self, now_ns: int) -> list[Point]:
        """One `device_health` point per device: when it was last heard from and, for Modbus devices,
        how late and how long its last poll was (docs/schema.md)."""
        points = []
        for key, seen in self._seen.items():
            fields: dict[str, float | int | bool | str] = {
                "failing": key in self._faulty,
                "failed_polls": seen.failed_polls,
            }
            # after a restart, the last reading stored stands in for the last one seen; a device never
            # seen has no age, but has been silent at least since the collector started
            last_ns = seen.last_seen_ns or self.states.get(key, DeviceState()).last_time_ns
            if last_ns > 0:
                fields["last_seen_age_s"] = round(max(0.0, (now_ns - last_ns) / NS), 3)
            silent_s = max(0.0, (now_ns - (last_ns or self._started_ns)) / NS)
            fields["intervals_silent"] = round(silent_s / seen.interval_s, 3)
            if seen.poll_lateness_s is not None and seen.poll_cycle_s is not None:
                fields["poll_lateness_s"] = round(seen.poll_lateness_s, 4)
                fields["poll_cycle_s"] = round(seen.poll_cycle_s, 4)
            tags = {k: v for k, v in seen.ref.tags().items() if k != "profile"}
            points.append(Point("device_health", tags, fields, now_ns))
        return points

    def _health_point(self) -> Point:
        """The `collector_health` point: buffer, counters and the writes since the last one."""
        age = self.buffer.oldest_age_s()  # once per point: health() takes it too
        h = self.health(age)
        counters = self.buffer.counters()
        fields: dict[str, float | int | bool | str] = {
            "buffer_depth": self.buffer.depth,
            "buffer_oldest_age_s": age,
            "failing_devices": len(self._faulty),
            "accepted_modbus": counters.get("accepted_modbus", 0),
            "accepted_mqtt": counters.get("accepted_mqtt", 0),
            "duplicates": counters.get("duplicate", 0),
            "dead_letters": sum(v for k, v in counters.items() if k.startswith("dead_letter:")),
            "unclean_stops": counters.get("unclean_stops", 0),
            "status_ok": h["status"] == "ok",
            "points_written": self.points_written,
            "writes": len(self._write_s),
        }
        if self._write_s:
            fields["write_latency_ms_mean"] = round(1000 * sum(self._write_s) / len(self._write_s), 3)
            fields["write_latency_ms_max"] = round(1000 * max(self._write_s), 3)
        self._write_s = []
        return Point("collector_health", {"collector": self.config.collector_id}, fields, time.time_ns())

    def _start_http(self) -> None:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body = generate_latest(collector.metrics.registry)
                    self._send(200, CONTENT_TYPE_LATEST, body)
                elif self.path == "/healthz":
                    h = collector.health()
                    self._send(
                        200 if h["status"] == "ok" else 503, "application/json", json.dumps(h).encode()
                    )
                else:
                    self._send(404, "text/plain", b"not found: try /healthz or /metrics\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every few seconds would drown the log

        try:
            self._http = ThreadingHTTPServer((self.config.health_host, self.config.health_port), Handler)
        except OSError as exc:
            raise JieshuiError(
                f"collector health server cannot listen on {self.config.health_host}:"
                f"{self.config.health_port}: {exc}"
            ) from exc
        self.health_port = int(self._http.server_address[1])
        threading.Thread(target=self._http.serve_forever, name="health-http", daemon=True).start()
