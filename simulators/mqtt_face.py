"""The simulators' MQTT face: each MQTT device of the inventory is its own paho client.

A device publishes its payloads (the profile's JSON schema) with QoS 1 on
`jieshui/<district>/<community>/<device>/telemetry`, keeps a retained `.../status` ({"online": true})
and leaves a last will ({"online": false}) for the broker to publish if it vanishes. A car-wash unit
sends one message per wash, when the simulated clock reaches it, and a status message with its
totalizers every 15 simulated minutes. Message faults (malformed, duplicate, out of order, clock skew,
dropout) are applied here. Device timestamps are wall-clock milliseconds: devices keep real time even
when the physics runs accelerated. Given the site's device secret (`device_secret`, else the
`JIESHUI_MQTT_DEVICE_SECRET` variable), each device logs in with its own account (`jieshui.mqtt_accounts`),
as a field device does against a broker with the ACL; without it, all share the broker URL's credentials.
With an `mqtts://` broker the devices verify its certificate, against `ca_file` (`JIESHUI_MQTT_CA_FILE`)
when given, else the system's CAs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices.profile import Profile, find_profile
from jieshui.errors import JieshuiError
from jieshui.faults import ClockSkew, Dropout, Duplicate, Malformed, OutOfOrder
from jieshui.inventory import Device, Mqtt, Site
from jieshui.mqtt_accounts import DEVICE_SECRET_ENV, device_password, device_username
from jieshui.settings import MqttEndpoint
from jieshui.tls import client_context, find_verification_error, untrusted_message
from simulators.live import LiveWorld
from simulators.model import NS

log = logging.getLogger(__name__)

STATUS_EVERY_S = 15 * 60
TICK_S = 0.05


def telemetry_topic(district: str, community: str, device: str) -> str:
    """The topic a device publishes its readings on."""
    return f"jieshui/{district}/{community}/{device}/telemetry"


def status_topic(district: str, community: str, device: str) -> str:
    """The retained topic a device announces itself on (and its last will goes to)."""
    return f"jieshui/{district}/{community}/{device}/status"


def payload_for(
    profile: Profile, values: dict[str, float | int | str], event: str, seq: int, ts_ms: int
) -> dict[str, object]:
    """A payload per the profile's schema from quantity values (json value = quantity / scale)."""
    assert profile.mqtt is not None  # noqa: S101
    out: dict[str, object] = {}
    if profile.mqtt.timestamp_key:
        out[profile.mqtt.timestamp_key] = ts_ms
    for f in profile.mqtt.fields:
        if f.key == profile.mqtt.sequence_key:
            out[f.key] = seq
        elif f.key == "event":
            out[f.key] = event
        elif f.quantity is not None and f.quantity in values:
            if not f.required and event == "status":
                continue  # per-wash keys appear only in wash messages
            value = values[f.quantity]
            if f.type == "number":
                out[f.key] = round(float(value) / f.scale, 6)
            elif f.type == "integer":
                out[f.key] = int(value)
            else:
                out[f.key] = value
    return out


MALFORMED_VARIANTS = ("truncated", "wrong_type", "missing_key", "not_json", "out_of_range")


def corrupt(payload: dict[str, object], variant: str, rng: random.Random, required: set[str]) -> bytes:
    """Turn a good payload into a bad one of the given kind (what the collector must dead-letter).

    `required` are the keys the schema requires: a dropped key is one of them, so the result is
    always invalid, never merely shorter.
    """
    if variant == "any":
        variant = rng.choice(MALFORMED_VARIANTS)
    text = json.dumps(payload)
    if variant == "truncated":
        return text[: max(1, len(text) // 2)].encode()
    if variant == "not_json":
        return b"\x00\xffnot json at all"
    bad = dict(payload)
    keys = [k for k in bad if k not in ("ts",)]
    if variant == "wrong_type":
        key = rng.choice(keys)
        bad[key] = "oops" if not isinstance(bad[key], str) else 12345
    elif variant == "missing_key":
        del bad[rng.choice(sorted(required & set(bad)))]
    elif variant == "out_of_range":
        numeric = [k for k in keys if isinstance(bad[k], int | float) and not isinstance(bad[k], bool)]
        bad[rng.choice(numeric)] = -1e12
    return json.dumps(bad).encode()


@dataclass
class MqttDevice:
    """One simulated MQTT device: its client, its place in the topic tree, its counters."""

    district: str
    community: str
    device: Device
    profile: Profile
    client: mqtt.Client
    rng: random.Random
    totals: dict[str, float | int | str]
    seq: int = 0
    last_sim_ns: int = 0
    next_status_ns: int = 0
    held: bytes | None = None  # a message held back to be sent out of order
    # every payload handed to paho with its message id, and the ids the broker acknowledged (PUBACK)
    published: list[tuple[int, bytes]] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)

    @property
    def acknowledged(self) -> list[bytes]:
        """Payloads the broker has acknowledged: published, as far as the broker knows."""
        return [body for mid, body in self.published if mid in self.acked]

    @property
    def required_keys(self) -> set[str]:
        """The payload keys the profile's schema requires."""
        assert self.profile.mqtt is not None  # noqa: S101
        keys = {f.key for f in self.profile.mqtt.fields if f.required}
        return keys | ({self.profile.mqtt.timestamp_key} if self.profile.mqtt.timestamp_key else set())

    @property
    def topic(self) -> str:
        """Telemetry topic."""
        return telemetry_topic(self.district, self.community, self.device.id)


class MqttFace:
    """Publishes every MQTT device of a site from one scheduler thread."""

    def __init__(
        self,
        site: Site,
        world: LiveWorld,
        broker: MqttEndpoint,
        seed: int = 1,
        keep_published: bool = False,
        device_secret: str | None = None,
        ca_file: str | None = None,
    ):
        # `jieshui simulate` does not pass the secret (yet): the variable is how docker-compose's demo
        # profile gives it, so the simulated devices log in as field devices do and meet the ACL.
        secret = device_secret if device_secret is not None else os.environ.get(DEVICE_SECRET_ENV) or None
        self.world = world
        self.broker = broker
        self.ca_file = ca_file
        self.keep_published = keep_published
        # one context for every device: the CA file is read once (and refused once, named, if unreadable)
        tls = client_context(ca_file, "JIESHUI_MQTT_CA_FILE") if broker.tls else None
        self.devices: list[MqttDevice] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-face", daemon=True)
        now = world.clock.now_ns()
        for district, community in site.communities():
            for _, device in community.devices():
                if not isinstance(device.connection, Mqtt):
                    continue
                profile = find_profile(device.profile)
                client = mqtt.Client(
                    CallbackAPIVersion.VERSION2,
                    client_id=f"sim-{community.id}-{device.id}",
                    protocol=mqtt.MQTTv5,
                )
                if secret:
                    username = device_username(community.id, device.id)
                    client.username_pw_set(username, device_password(secret, username))
                elif broker.username:
                    password = broker.password.get_secret_value() if broker.password else None
                    client.username_pw_set(broker.username, password)
                if tls is not None:
                    client.tls_set_context(tls)
                status = status_topic(district.id, community.id, device.id)
                client.will_set(status, json.dumps({"online": False}), qos=1, retain=True)
                client.reconnect_delay_set(min_delay=1, max_delay=2)  # a restarted broker is found soon
                acked: set[int] = set()
                client.on_publish = lambda _c, _u, mid, _rc, _p, acked=acked: acked.add(mid)
                totals = world.initial_totals(community.id, device.id)
                self.devices.append(
                    MqttDevice(
                        district.id, community.id, device, profile, client,
                        random.Random(f"{seed}/mqtt/{community.id}/{device.id}"),  # noqa: S311
                        totals, last_sim_ns=now, next_status_ns=now, acked=acked,
                    )
                )  # fmt: skip

    def start(self) -> MqttFace:
        """Connect every device, announce it (retained status), and start publishing."""
        for d in self.devices:
            where = f"{self.broker.host}:{self.broker.port}"
            try:
                d.client.connect(self.broker.host, self.broker.port, keepalive=30)
            except OSError as exc:
                refused = find_verification_error(exc)
                if refused is not None:
                    why = untrusted_message(
                        f"MQTT broker {where}", refused, "JIESHUI_MQTT_CA_FILE", self.ca_file
                    )
                    raise JieshuiError(f"simulated device {d.device.id}: {why}") from exc
                raise JieshuiError(f"simulated device {d.device.id}: cannot reach MQTT broker "
                                   f"{where}: {exc}") from exc  # fmt: skip
            d.client.loop_start()
            status = status_topic(d.district, d.community, d.device.id)
            d.client.publish(
                status, json.dumps({"online": True, "profile": d.profile.ref}), qos=1, retain=True
            )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop publishing, mark devices offline (retained), disconnect."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        deadline = time.monotonic() + 5
        for d in self.devices:
            # Let messages queued during a broker outage go out before leaving (paho resends them
            # on reconnect); whatever is still unacknowledged at the deadline was never published.
            while time.monotonic() < deadline and any(mid not in d.acked for mid, _ in d.published):
                time.sleep(0.05)
            status = status_topic(d.district, d.community, d.device.id)
            info = d.client.publish(status, json.dumps({"online": False}), qos=1, retain=True)
            # Already disconnected: the broker publishes the last will instead.
            with contextlib.suppress(ValueError, RuntimeError):
                info.wait_for_publish(2)
            d.client.disconnect()
            d.client.loop_stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.world.clock.now_ns()
            for d in self.devices:
                self._tick(d, now)
            self._stop.wait(TICK_S)

    def _tick(self, d: MqttDevice, now_sim: int) -> None:
        events = self.world.washes(d.community, d.device.id, d.last_sim_ns, now_sim)
        for event in events:
            d.totals.update(event.values)
            self._send(d, event.values, "wash", event.sim_ns)
        if now_sim >= d.next_status_ns:
            self._send(d, d.totals, "status", now_sim)
            d.next_status_ns = now_sim + STATUS_EVERY_S * NS
        d.last_sim_ns = now_sim

    def _send(self, d: MqttDevice, values: dict[str, float | int | str], event: str, sim_ns: int) -> None:
        now = dt.datetime.fromtimestamp(sim_ns / NS, tz=dt.UTC)
        active = [f for f in d.device.faults if f.active(now)]
        if any(isinstance(f, Dropout) for f in active):
            return
        skew_ms = sum(int(f.seconds * 1000) for f in active if isinstance(f, ClockSkew))
        d.seq += 1
        payload = payload_for(d.profile, values, event, d.seq, time.time_ns() // 1_000_000 + skew_ms)
        body = json.dumps(payload).encode()
        for f in active:
            if isinstance(f, Malformed) and d.rng.random() < f.probability:
                body = corrupt(payload, f.variant, d.rng, d.required_keys)
        copies = 1 + sum(1 for f in active if isinstance(f, Duplicate) and d.rng.random() < f.probability)
        out_of_order = next((f for f in active if isinstance(f, OutOfOrder)), None)
        if out_of_order is not None and d.held is None and d.rng.random() < out_of_order.probability:
            d.held = body  # sent after the next message
            return
        for _ in range(copies):
            self._publish(d, body)
        if d.held is not None:
            held, d.held = d.held, None
            self._publish(d, held)

    def _publish(self, d: MqttDevice, body: bytes) -> None:
        info = d.client.publish(d.topic, body, qos=1)
        if self.keep_published:
            d.published.append((info.mid, body))
