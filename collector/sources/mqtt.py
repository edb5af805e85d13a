"""MQTT input: a paho-mqtt 2 subscriber (the collector's only importer of paho), converted at the edge.

It connects with MQTT v5, a stable client id, `clean_start=False` and a session expiry, so the broker
keeps the collector's QoS 1 messages while it is away; with `share_group` it subscribes as
`$share/<group>/jieshui/+/+/+/telemetry`, so several collectors split one fleet. Messages are
acknowledged manually, only after the collector has stored them durably (`ack`): a crash between
receiving and storing leaves them unacknowledged, and the broker delivers them again.

paho's callbacks run on its network thread; each message becomes an `Incoming` value handed to the
asyncio loop. Nothing outside this module sees a paho object. A connection that fails (refused, or a
broker certificate `mqtts://` cannot trust) is logged once per reason, not once per retry, and paho
keeps retrying with backoff.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from jieshui.settings import MqttEndpoint
from jieshui.tls import client_context, find_verification_error, untrusted_message

log = logging.getLogger(__name__)

TELEMETRY_FILTER = "jieshui/+/+/+/telemetry"
#: The variable that names the CA to trust for mqtts://, for error messages.
CA_FILE_VARIABLE = "JIESHUI_MQTT_CA_FILE"


@dataclass(frozen=True, slots=True)
class Incoming:
    """A received message: topic, payload, receive time, and the handle to acknowledge it."""

    topic: str
    payload: bytes
    received_ns: int
    mid: int
    qos: int
    redelivered: bool


@dataclass(frozen=True)
class MqttOptions:
    """How the collector subscribes."""

    client_id: str
    share_group: str | None = None
    session_expiry_s: int = 7 * 86400  # how long the broker keeps our messages while we are away
    # QoS 1 messages in flight to us before we acknowledge; collector.pipeline.SEEN_WINDOW must cover it
    receive_maximum: int = 1000
    keepalive_s: int = 30
    ca_file: str | None = None  # TLS: trust this CA (a self-signed broker certificate)


class MqttSource:
    """A persistent-session, manually acknowledged subscription to every device's telemetry."""

    def __init__(
        self,
        broker: MqttEndpoint,
        options: MqttOptions,
        deliver: Callable[[Incoming], None],
        on_state: Callable[[bool, str], None] | None = None,
    ) -> None:
        self.broker = broker
        self.options = options
        self._deliver = deliver
        self._on_state = on_state or (lambda connected, why: None)
        self.connected = False
        self.last_failure = ""  # why the last connection attempt failed; "" once connected
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if broker.username:
            client.username_pw_set(
                broker.username, broker.password.get_secret_value() if broker.password else None
            )
        if broker.tls:  # verified always: against the CA file when given, else the system's CAs
            client.tls_set_context(client_context(options.ca_file, CA_FILE_VARIABLE))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client = client

    @property
    def topic_filter(self) -> str:
        """What we subscribe to."""
        if self.options.share_group:
            return f"$share/{self.options.share_group}/{TELEMETRY_FILTER}"
        return TELEMETRY_FILTER

    def start(self) -> None:
        """Connect (asynchronously; paho reconnects by itself) and start the network thread."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.options.session_expiry_s
        props.ReceiveMaximum = self.options.receive_maximum
        self._client.connect_async(
            self.broker.host,
            self.broker.port,
            keepalive=self.options.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect, keeping the session (unacknowledged messages come again next time)."""
        self._client.disconnect()
        self._client.loop_stop()

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a message now stored durably."""
        if qos > 0:
            self._client.ack(mid, qos)

    # -- paho callbacks (network thread) ----------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            self.connected = False
            self._on_state(False, f"connection refused: {reason}")
            return
        self.connected = True
        self.last_failure = ""
        client.subscribe(self.topic_filter, options=SubscribeOptions(qos=1))
        present = bool(getattr(flags, "session_present", False))
        self._on_state(True, "session resumed" if present else "new session")

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this from inside its `except OSError` around the connection attempt and passes
        # no error: the exception being handled is the one to explain (TLS, refused, unreachable).
        error = sys.exc_info()[1]
        where = f"{self.broker.host}:{self.broker.port}"
        refused = find_verification_error(error) if error is not None else None
        if refused is not None:
            why = untrusted_message(f"MQTT broker {where}", refused, CA_FILE_VARIABLE, self.options.ca_file)
        else:
            why = f"MQTT broker {where}: cannot connect: {error or 'connection failed'}"
        self.connected = False
        if why != self.last_failure:  # once per reason: paho retries every 1-30 s
            self.last_failure = why
            (log.error if refused is not None else log.warning)("%s; retrying", why)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connected = False
        self._on_state(False, f"disconnected: {reason}")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._deliver(
            Incoming(
                topic=message.topic,
                payload=bytes(message.payload),
                received_ns=time.time_ns(),
                mid=message.mid,
                qos=message.qos,
                redelivered=bool(message.dup),
            )
        )


def deliver_to(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> Callable[[Incoming], None]:
    """A `deliver` callback that hands messages from paho's thread to an asyncio queue, waking the
    loop once per burst rather than once per message (a wake-up costs the loop as much as a message's
    decoding: bench/bench_mqtt.py)."""
    pending: collections.deque[Incoming] = collections.deque()
    lock = threading.Lock()
    scheduled = False

    def flush() -> None:  # on the loop: everything that arrived meanwhile goes to the queue
        nonlocal scheduled
        with lock:
            scheduled = False
        while pending:
            queue.put_nowait(pending.popleft())

    def deliver(incoming: Incoming) -> None:  # on paho's thread
        nonlocal scheduled
        pending.append(incoming)
        with lock:
            if scheduled:
                return  # a flush is on its way and will take this one too
            scheduled = True
        loop.call_soon_threadsafe(flush)

    return deliver
