"""Scale-out: two collectors on one MQTT v5 shared subscription against one, same load, same run,
with the proof by count that no message is lost or stored twice.

The fleet and publishers of bench_mqtt (bench/mqtt_load.py: car-wash units, QoS 1, a `seq` per message)
load two sides, each with its own real mosquitto and both writing to one real influxd:
- one: one `jieshui collect --share-group G` process (a group of one, so both sides run the same code
  path: shared-subscription readings carry no deltas);
- two: two `jieshui collect --share-group G` processes, which the broker deals the messages to.
The three collectors start once, on buffers seeded in steady state (a full de-duplication window per
unit), and stay subscribed; a side's own broker means it never receives the other side's load. Each
round publishes the same number of messages (new seq numbers) to one side, waits until they are all
stored, then does the same for the other side (the order alternates between rounds), for as many
rounds as the budget allows. A phase's rate is messages / (last write its collectors confirmed -
first message published). At the end each side is verified in InfluxDB: each (device, seq) exactly
once (`count` == `count(distinct(wash_count))` == published per device; a message stored by both
collectors would be two points, since the `collector` tag differs), every message accepted by exactly
one collector of the pair, no dead letter, no duplicate dropped, no write error.
Target (issue 9): two / one >= 1.0 with nothing lost or doubled.
Run: `.venv/bin/python -m bench.bench_scaleout [--budget-s 60]`.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Result
from bench.common import main as bench_main
from bench.mqtt_load import (
    FIRST_SEQ,
    WARMUP_DEVICE,
    CollectorRun,
    CpuMeter,
    Publishers,
    Unit,
    fleet,
    payload,
    problems_in,
    publish_once,
    round_options,
    site_yaml,
    stored_counts,
    verify,
    wait_all_stored,
    warmup_topic,
)
from jieshui.services import InfluxServer, MosquittoServer

DEFAULT_BUDGET_S = 60.0
DEVICES = 100
PUBLISHERS = 2
#: messages per device and phase at the default budget (sized from rates measured on the 2-core bench
#: machine: a phase takes a few seconds, so several alternating rounds fit)
PER_DEVICE_AT_DEFAULT = 60
MAX_ROUNDS = 6


class Group:
    """`size` collectors in one share group on their own broker, running for the whole benchmark."""

    def __init__(self, name: str, size: int, work: Path, units: list[Unit], influx: InfluxServer) -> None:
        self.name, self.size, self.units, self.influx = name, size, units, influx
        self.database = f"bench_{name}"
        self.mosq = MosquittoServer(work / f"mosquitto-{name}")
        self.mosq.start()
        site = work / "site.yaml"
        site.write_text(site_yaml(units), encoding="utf-8")
        self.runs: list[CollectorRun] = []
        try:
            for i in range(size):
                self.runs.append(
                    CollectorRun(
                        work / f"{name}-{i}",
                        site,
                        f"bench-{name}-{i}",
                        self.mosq.url,
                        influx.url,
                        self.database,
                        share_group=f"bench-{name}",
                        seed=units,
                    )
                )
        except BaseException:
            self.kill()
            raise
        self.messages = 0  # accepted by the group so far
        self.phases: list[dict[str, Any]] = []
        self.statuses: list[int] = []

    def warm_up(self) -> None:
        """One message per collector from a unit of its own (the broker deals them round robin): it
        proves the subscriptions and warms the pipelines."""
        for c in self.runs:
            c.wait_connected()
        now_ms = time.time_ns() // 1_000_000
        for k in range(self.size):
            publish_once(self.mosq.host, self.mosq.port, warmup_topic(self.units), payload(1 + k, now_ms))
        self.messages += self.size
        wait_all_stored(self.runs, self.messages, 30, poll_s=0.05)

    def load(self, per_device: int, first_seq: int, timeout_s: float) -> dict[str, Any]:
        """Publish `per_device` messages per unit (seq from `first_seq`) and wait until all are stored."""
        n = per_device * len(self.units)
        pubs = Publishers(
            self.mosq.host,
            self.mosq.port,
            self.units,
            per_device,
            PUBLISHERS,
            first_seq,
            tag=f"{self.name}-{first_seq}",
        )
        try:
            before = [c.accepted() for c in self.runs]
            assert self.mosq.process is not None
            assert self.influx.process is not None
            meter = CpuMeter(
                {"mosquitto": self.mosq.process.pid, "influxd": self.influx.process.pid}
                | {f"collector{i}": c.proc.pid for i, c in enumerate(self.runs)}
            )
            pubs.go()
            self.messages += n
            done, metrics = wait_all_stored(self.runs, self.messages, timeout_s)
            used = meter.read()
            p = pubs.results()
        finally:
            pubs.kill()
        phase = {
            "messages": n,
            "seconds": done - p["first_publish"],
            "publish_seconds": p["last_ack"] - p["first_publish"],
            "cpu_s": sum(used[f"collector{i}_cpu_s"] for i in range(self.size)),
            "server_cpu_s": used["mosquitto_cpu_s"] + used["influxd_cpu_s"],
            "pub_cpu_s": p["cpu_s"],
            "machine_busy_share": used["machine_busy_share"],
            "split": [c.accepted(m) - b for c, m, b in zip(self.runs, metrics, before, strict=True)],
            "problems": [problems_in(m) for m in metrics],
        }
        self.phases.append(phase)
        return phase

    def stop(self) -> None:
        for c in self.runs:
            self.statuses.append(c.stop(self.mosq.host, self.mosq.port))
        self.mosq.stop()

    def kill(self) -> None:
        for c in self.runs:
            c.kill()
        self.mosq.stop()

    def verify(self, per_device: int) -> dict[str, Any]:
        """Every (device, seq) of every round exactly once in the group's database."""
        check = verify(
            stored_counts(self.influx.url, self.database), self.units, per_device, {WARMUP_DEVICE: self.size}
        )
        problems = self.phases[-1]["problems"] if self.phases else []
        check["verified"] = (
            check["lost"] == 0
            and check["doubled"] == 0
            and check["devices_wrong"] == 0
            and check["unexpected"] == 0
            and not any(problems)
            and self.statuses == [0] * self.size
            and all(sum(x["split"]) == x["messages"] for x in self.phases)
        )
        return check


def run(
    budget_s: float = DEFAULT_BUDGET_S, per_device: int | None = None, max_rounds: int | None = None
) -> Result:
    """Rounds of one collector and two on a shared subscription, alternating (module docstring)."""
    started = time.monotonic()
    scale = min(1.0, budget_s / DEFAULT_BUDGET_S)
    per_device = per_device or max(20, int(PER_DEVICE_AT_DEFAULT * scale))
    max_rounds = max_rounds or MAX_ROUNDS
    units = fleet(DEVICES)
    rounds = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        influx = InfluxServer(work / "influxd")
        with influx:
            groups: list[Group] = []
            try:
                groups.append(Group("one", 1, work, units, influx))
                groups.append(Group("two", 2, work, units, influx))
                one, two = groups
                one.warm_up()
                two.warm_up()
                round_s = 0.0
                # rounds while the budget allows another (the last ~6 s are for stopping and counting)
                while rounds < max_rounds and (
                    rounds == 0 or time.monotonic() - started + 1.2 * round_s < budget_s - 6
                ):
                    t0 = time.monotonic()
                    first_seq = FIRST_SEQ + rounds * per_device
                    order = (one, two) if rounds % 2 == 0 else (two, one)  # alternate who goes first
                    for group in order:
                        group.load(per_device, first_seq, timeout_s=max(60, 3 * budget_s))
                    rounds += 1
                    round_s = time.monotonic() - t0
                one.stop()
                two.stop()
            except BaseException:
                for group in groups:
                    group.kill()
                raise
            checks = {g.name: g.verify(per_device * rounds) for g in (one, two)}
    ones, twos = one.phases, two.phases
    one_rates = [x["messages"] / x["seconds"] for x in ones]
    two_rates = [x["messages"] / x["seconds"] for x in twos]
    # the rate over all rounds (alternating, so drift on a shared machine hits both alike)
    one_rate = sum(x["messages"] for x in ones) / sum(x["seconds"] for x in ones)
    two_rate = sum(x["messages"] for x in twos) / sum(x["seconds"] for x in twos)
    verified = all(c["verified"] for c in checks.values())
    n = ones[0]["messages"]
    notes = [
        f"{DEVICES} wx-cw01 units, {per_device} wash messages each per phase ({n:,}), QoS 1, from "
        f"{PUBLISHERS} publisher processes (pre-encoded MQTT 3.1.1 packets, at most 2,000 unacknowledged); "
        "influxd 1.6 and, per side, a mosquitto 2.0 (MQTT v5 shared subscriptions, persistence, "
        "max_queued_messages 0), all real servers",
        "one: `jieshui collect --share-group` (a group of one, so both sides run the same code path: no "
        "deltas); two: two such processes in one group; all three start once on buffers seeded in "
        "steady state and run with production defaults (buffer synchronous=FULL); each side has its own "
        "broker so its collectors stay subscribed between rounds without receiving the other side's load",
        f"{rounds} round(s), each one phase per side in alternating order; rate = messages / (last "
        "confirmed write of the side's collectors - first message published); the ratio compares the "
        "rates over all rounds (per-round figures kept)",
        f"the machine has {os.cpu_count()} cores shared by the publishers, mosquitto, influxd and the "
        "collectors (and, on the bench host, other jobs): a collector is one Python process whose "
        "pipeline runs under one GIL, so a second one can add at most what the cores have left; "
        "machine_busy_share is the busy share of all cores during each phase (/proc/stat, whoever used "
        "them): near 1.0 the cores are saturated and two collectors cannot be faster than one",
        "cpu_us_per_message sums the side's collectors' CPU; servers_ is mosquitto + influxd, "
        "publishers_ the publisher processes; split: MQTT messages each collector of the pair accepted",
    ]
    if not verified:
        notes.append("VERIFICATION FAILED (see figures); the ratio is set to 0")
    ratio = two_rate / one_rate if verified else 0.0
    return Result(
        name="scaleout",
        title="Scale-out: two collectors on an MQTT v5 shared subscription vs one, same load",
        baseline_label="one collector (share group of one)",
        baseline=round(one_rate, 1),
        ours_label="two collectors (one share group)",
        ours=round(two_rate, 1),
        unit="messages/s",
        ratio=round(ratio, 4),
        target=1.0,
        target_op=">=",
        figures={
            "devices": DEVICES,
            "messages_per_phase": n,
            "rounds": rounds,
            "one_messages_per_s": [round(r, 1) for r in one_rates],
            "two_messages_per_s": [round(r, 1) for r in two_rates],
            "two_over_one_per_round": [round(t / o, 3) for t, o in zip(two_rates, one_rates, strict=True)],
            "two_split_messages": [x["split"] for x in twos],
            "one_cpu_us_per_message": [round(1e6 * x["cpu_s"] / x["messages"], 1) for x in ones],
            "two_cpu_us_per_message": [round(1e6 * x["cpu_s"] / x["messages"], 1) for x in twos],
            "one_servers_cpu_us_per_message": [
                round(1e6 * x["server_cpu_s"] / x["messages"], 1) for x in ones
            ],
            "two_servers_cpu_us_per_message": [
                round(1e6 * x["server_cpu_s"] / x["messages"], 1) for x in twos
            ],
            "publishers_cpu_us_per_message": [
                round(1e6 * x["pub_cpu_s"] / x["messages"], 2) for x in ones + twos
            ],
            "one_machine_busy_share": [round(x["machine_busy_share"], 3) for x in ones],
            "two_machine_busy_share": [round(x["machine_busy_share"], 3) for x in twos],
            "one_stored": checks["one"]["stored"],
            "two_stored": checks["two"]["stored"],
            "lost": checks["one"]["lost"] + checks["two"]["lost"],
            "doubled": checks["one"]["doubled"] + checks["two"]["doubled"],
            "devices_wrong": checks["one"]["devices_wrong"] + checks["two"]["devices_wrong"],
            "collector_problems": [x["problems"] for x in ones + twos if any(x["problems"])],
            "verified": verified,
        },
        notes=notes,
        seconds=round(time.monotonic() - started, 1),
    )


def main() -> None:
    bench_main(__doc__ or "", DEFAULT_BUDGET_S, run, round_options(MAX_ROUNDS))


if __name__ == "__main__":
    main()
