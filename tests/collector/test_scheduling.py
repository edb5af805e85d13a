"""Poll scheduling and backoff, pure: aligned slots, strictly increasing, backing off on a shared line."""

from __future__ import annotations

import asyncio
import random

from collector.pipeline import DeviceRef
from collector.sources.modbus import Backoff, DevicePoller, ModbusLink, PollResult
from devices.profile import find_profile
from jieshui.inventory import ModbusRtu, ModbusTcp

NS = 10**9
REF = DeviceRef("d", "c", "m", find_profile("ul-wm100"), "c1")


async def _ignore(result: PollResult) -> None:
    return None


def _poller(shared: bool, interval_s: float = 60) -> DevicePoller:
    """A poller (pymodbus clients need a running loop to exist; nothing here connects)."""
    return asyncio.run(_make(shared, interval_s))


async def _make(shared: bool, interval_s: float) -> DevicePoller:
    conn = (
        ModbusRtu(protocol="modbus_rtu", serial_port="/dev/null")
        if shared
        else ModbusTcp(protocol="modbus_tcp", host="127.0.0.1")
    )
    return DevicePoller(REF, ModbusLink(conn, 1.0, 0), 1, interval_s, _ignore, shared_line=shared)


def test_slots_are_aligned_to_the_interval_and_strictly_after_the_last() -> None:
    poller = _poller(shared=False)
    now = 1_800_000_123 * NS
    slot = poller.next_slot_ns(now)
    assert slot % (60 * NS) == 0
    assert 0 < slot - now <= 60 * NS
    assert poller.next_slot_ns(now, after_ns=slot) == slot + 60 * NS  # never the same slot twice
    assert poller.requests  # planned from the profile


def test_a_failing_device_on_a_shared_line_backs_off_exponentially() -> None:
    poller = _poller(shared=True, interval_s=1)
    now = 1_000 * NS
    gaps = []
    for failures in range(0, 12):
        poller.failures = failures
        gaps.append((poller.next_slot_ns(now) - now) // NS)
    assert gaps[:5] == [1, 2, 4, 8, 16]
    assert max(gaps) == 601  # capped at 10 minutes of skipped slots
    tcp = _poller(shared=False, interval_s=1)
    tcp.failures = 5
    assert (tcp.next_slot_ns(now) - now) // NS == 1  # its own connection: it keeps its schedule


def test_backoff_has_full_jitter_and_a_cap() -> None:
    backoff = Backoff(base_s=0.5, cap_s=4, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    assert all(0 <= d <= 4 for d in delays)
    assert delays[0] <= 0.5
    assert max(delays[5:]) > 0.5  # the ceiling grew
    backoff.reset()
    assert backoff.next_delay() <= 0.5
