"""Bad Modbus answers: register blocks that decode to impossible values, through the pure pipeline, and
bad frames on the wire, through the collector's Modbus source against a raw TCP server of this test.

Pure: every register of every Modbus profile missing, outside 16 bits, NaN or infinite (floats), past
its quantity's range (where its type can say so), and the 0xFFFF "no value" sentinel where it decodes
out of range; plus cases written out by hand. Each becomes a dead letter with its reason and the
quantity, table and address named.

Wire: a raw asyncio server answers the poller's read with garbage, half a frame, another transaction
or unit id, another function code, a wrong byte count, too few or too many registers, a Modbus
exception, or by closing the connection. The poll fails with its reason and the device and address
named; the server then answers correctly and the next poll reads the device again.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from collector.pipeline import DeadLetter, DeviceRef, DeviceState, Reading, process_modbus, raw_registers
from collector.sources.modbus import DevicePoller, ModbusLink, PollResult
from devices.codec import CodecError
from devices.profile import Profile, load_profiles
from devices.registers import codecs_for, encode_values
from jieshui.inventory import ModbusTcp

Blocks = dict[str, dict[int, int]]
T0 = 1_795_000_000 * 10**9


def modbus_profiles() -> list[Profile]:
    """Every shipped profile with a register map."""
    shipped = {p.ref: p for p in load_profiles().values() if p.modbus is not None}
    return [shipped[ref] for ref in sorted(shipped)]


PROFILES = {p.name: p for p in modbus_profiles()}


def good_values(profile: Profile) -> dict[str, float | bool]:
    """A plausible reading: totalizers mid-life, bounded quantities mid-range, no fault."""
    values: dict[str, float | bool] = {}
    for q in profile.quantities:
        if q.type == "bool":
            values[q.name] = True
        elif q.type == "int":
            values[q.name] = 0
        elif q.totalizer:
            values[q.name] = 1234.5
        else:
            values[q.name] = ((q.min or 0) + (q.max if q.max is not None else 10)) / 2
    return values


def good_blocks(profile: Profile) -> Blocks:
    """The register blocks a poll of a healthy device returns."""
    image = encode_values(profile, good_values(profile))
    return {table: dict(regs) for table, regs in image.items() if regs}


@dataclass(frozen=True)
class ModbusCase:
    """Polled registers of one device and the dead letter they must become."""

    id: str
    profile: Profile
    blocks: Blocks
    reason: str
    text: str


def _edited(profile: Profile, table: str, changes: dict[int, int | None]) -> Blocks:
    blocks = good_blocks(profile)
    for address, word in changes.items():
        if word is None:
            del blocks[table][address]
        else:
            blocks[table][address] = word
    return blocks


def _without(profile: Profile, table: str) -> Blocks:
    return {t: regs for t, regs in good_blocks(profile).items() if t != table}


def _hand_cases() -> list[ModbusCase]:
    """Written out by hand from the profiles: the registers and the exact message."""
    hy, lq, ul, hs = PROFILES["hy-rwc200"], PROFILES["lq-rhc10"], PROFILES["ul-wm100"], PROFILES["hs-rp55"]
    return [
        # u16 x 0.1: raw 1001 is 100.1 %
        ModbusCase("hand/hy-rwc200/level-over-100-pct", hy, _edited(hy, "holding", {9: 1001}), "range",
                   "level_pct = 100.1 % is above its maximum 100"),
        # 0xFFFF x 0.001 m: the sentinel read as a depth of 65.5 m in a 6 m tank
        ModbusCase("hand/hy-rwc200/level-m-sentinel", hy, _edited(hy, "holding", {8: 0xFFFF}), "range",
                   "level_m = 65.535 m is above its maximum 6"),
        # i16 0xFFFF is -1, x 0.01: a negative flow
        ModbusCase("hand/lq-rhc10/negative-flow", lq, _edited(lq, "input", {120: 0xFFFF}), "range",
                   "treatment_flow_m3h = -0.01 m3/h is below its minimum 0"),
        # f32 150.0 = 0x43160000, word-swapped (CDAB) on the wire
        ModbusCase("hand/lq-rhc10/level-150-pct", lq, _edited(lq, "input", {104: 0x0000, 105: 0x4316}), "range",
                   "level_pct = 150 % is above its maximum 100"),
        # f32 NaN = 0x7FC00000, little-endian (DCBA): bytes 00 00 C0 7F
        ModbusCase("hand/hs-rp55/flow-nan", hs, _edited(hs, "holding", {2: 0x0000, 3: 0xC07F}), "decode",
                   "flow_m3h at holding 2: f32 registers [0, 49279] hold nan, not a number"),
        # f32 31.0 = 0x41F80000, DCBA: bytes 00 00 F8 41
        ModbusCase("hand/hs-rp55/power-31-kw", hs, _edited(hs, "holding", {6: 0x0000, 7: 0xF841}), "range",
                   "power_kw = 31 kW is above its maximum 30"),
        # u16 0xFFFF x 0.1 kPa
        ModbusCase("hand/hs-rp55/pressure-sentinel", hs, _edited(hs, "holding", {10: 0xFFFF}), "range",
                   "pressure_kpa = 6553.5 kPa is above its maximum 1600"),
        # f32 -1.0 = 0xBF800000, CDAB
        ModbusCase("hand/ul-wm100/negative-flow", ul, _edited(ul, "holding", {2: 0x0000, 3: 0xBF80}), "range",
                   "flow_m3h = -1 m3/h is below its minimum 0"),
        # f32 +inf = 0x7F800000, CDAB
        ModbusCase("hand/ul-wm100/flow-infinite", ul, _edited(ul, "holding", {2: 0x0000, 3: 0x7F80}), "decode",
                   "flow_m3h at holding 2: f32 registers [0, 32640] hold inf, not a number"),
        ModbusCase("hand/ul-wm100/block-one-short", ul, _edited(ul, "holding", {4: None}), "decode",
                   "alarm_code: registers holding 4+1 missing"),
        ModbusCase("hand/hy-rwc200/half-a-u32", hy, _edited(hy, "holding", {1: None}), "decode",
                   "rain_mm: registers holding 0+2 missing"),
        ModbusCase("hand/hy-rwc200/no-coils", hy, _without(hy, "coil"), "decode",
                   "pump_running: registers coil 0+1 missing"),
        ModbusCase("hand/hs-rp55/no-discrete-inputs", hs, _without(hs, "discrete"), "decode",
                   "running: registers discrete 0+1 missing"),
        ModbusCase("hand/lq-rhc10/nothing-read", lq, {}, "decode", "rain_mm: registers input 100+2 missing"),
        ModbusCase("hand/lq-rhc10/holding-instead-of-input", lq,
                   {"holding": good_blocks(lq)["input"], "discrete": {0: 1}}, "decode",
                   "rain_mm: registers input 100+2 missing"),
        ModbusCase("hand/ul-wm100/word-of-17-bits", ul, _edited(ul, "holding", {4: 70000}), "decode",
                   "alarm_code at holding 4: register value 70000 is outside 0..65535"),
        ModbusCase("hand/ul-wm100/negative-word", ul, _edited(ul, "holding", {0: -1}), "decode",
                   "volume_m3 at holding 0: register value -1 is outside 0..65535"),
    ]  # fmt: skip


def _generated_cases(profile: Profile) -> list[ModbusCase]:
    """Every register of the profile broken in each way its type allows."""
    out: list[ModbusCase] = []
    for codec in codecs_for(profile):
        reg = codec.register
        q = profile.quantity[reg.quantity]
        where = f"{reg.quantity} at {reg.table} {reg.address}"
        prefix = f"{profile.name}/{reg.quantity}"

        def put(
            kind: str,
            changes: dict[int, int | None],
            reason: str,
            text: str,
            table: str = reg.table,
            prefix: str = prefix,
        ) -> None:
            blocks = _edited(profile, table, changes)
            out.append(ModbusCase(f"{prefix}/{kind}", profile, blocks, reason, text))

        missing = f"{reg.quantity}: registers {reg.table} {reg.address}+{reg.count} missing"
        put("missing", {reg.address: None}, "decode", missing)
        if reg.count > 1:
            put("last-word-missing", {reg.address + reg.count - 1: None}, "decode", missing)
        if reg.type == "bool":
            continue
        put(
            "word-65536", {reg.address: 65536}, "decode", f"{where}: register value 65536 is outside 0..65535"
        )
        if reg.type.startswith("f"):
            for label, value in (("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf)):
                words = codec.encode(value)
                text = f"{where}: {reg.type} registers {words} hold {value}, not a number"
                put(label, dict(zip(codec.addresses, words, strict=True)), "decode", text)
        bounds = []
        if q.max is not None:
            bounds.append(("above-max", q.max + max(1.0, abs(q.max) * 0.01), "above its maximum", q.max))
        if q.min is not None:
            bounds.append(("below-min", q.min - max(1.0, abs(q.min) * 0.01), "below its minimum", q.min))
        for kind, value, side, bound in bounds:
            try:
                words = codec.encode(value)
            except CodecError:
                continue  # the register type cannot hold it (an unsigned register below 0)
            decoded = codec.decode(words)
            shown = round(float(decoded)) if q.type == "int" else float(decoded)
            text = f"{reg.quantity} = {shown:g} {q.unit} is {side} {bound:g}"
            put(kind, dict(zip(codec.addresses, words, strict=True)), "range", text)
        if reg.count == 1:
            sentinel = float(codec.decode([0xFFFF]))
            if q.max is not None and sentinel > q.max:
                side, bound = "above its maximum", q.max
            elif q.min is not None and sentinel < q.min:
                side, bound = "below its minimum", q.min
            else:
                continue  # 0xFFFF reads as a plausible value of this register
            text = f"{reg.quantity} = {sentinel:g} {q.unit} is {side} {bound:g}"
            put("sentinel-0xffff", {reg.address: 0xFFFF}, "range", text)
    return out


def modbus_register_cases() -> list[ModbusCase]:
    """The hand cases, then the generated ones that do not repeat a hand case's registers."""
    hand = _hand_cases()
    seen = {(c.profile.ref, raw_registers(c.blocks)) for c in hand}
    generated = [
        c
        for p in modbus_profiles()
        for c in _generated_cases(p)
        if (c.profile.ref, raw_registers(c.blocks)) not in seen
    ]
    return hand + generated


CASES = modbus_register_cases()


def _device(profile: Profile) -> DeviceRef:
    return DeviceRef("changning", "xinjing-6", f"dev-{profile.name}", profile, "c1")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_registers_become_a_dead_letter_naming_quantity_and_address(case: ModbusCase) -> None:
    ref = _device(case.profile)
    result, state = process_modbus(ref, DeviceState(), case.blocks, T0)
    assert isinstance(result, DeadLetter), case.id
    assert (result.reason, result.message) == (case.reason, case.text)
    assert result.raw == raw_registers(case.blocks)  # what was polled, kept with the refusal
    assert state == DeviceState()
    assert result.point("c1").to_line().startswith("dead_letter,collector=c1,community=xinjing-6,")


@pytest.mark.parametrize("profile", modbus_profiles(), ids=lambda p: p.ref)
def test_the_good_blocks_of_each_profile_are_a_reading(profile: Profile) -> None:
    result, _ = process_modbus(_device(profile), DeviceState(), good_blocks(profile), T0)
    assert isinstance(result, Reading)
    assert set(result.values) == set(profile.quantity)


# --- the wire -------------------------------------------------------------------------------------

WIRE_PROFILE = PROFILES["ul-wm100"]
TIMEOUT_S = 0.3
MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id


def _registers_frame(tid: int, unit: int, fc: int, words: list[int], byte_count: int | None = None) -> bytes:
    data = b"".join(struct.pack(">H", w) for w in words)
    pdu = bytes([fc, len(data) if byte_count is None else byte_count]) + data
    return MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu


#: How the raw server answers one read (transaction id, unit id, function code, the good words):
#: the bytes to send, or None to close the connection.
Answer = Callable[[int, int, int, list[int]], bytes | None]

WIRE_CASES: list[tuple[str, Answer, str, str]] = [
    ("garbage", lambda t, u, f, w: b"\xde\xad\xbe\xef" * 4, "timeout", "no valid answer within 0.3 s"),
    ("half-a-frame", lambda t, u, f, w: _registers_frame(t, u, f, w)[:9], "timeout", "no valid answer within 0.3 s"),
    ("other-transaction-id", lambda t, u, f, w: _registers_frame(t + 1, u, f, w), "timeout",
     "no valid answer within 0.3 s"),
    ("other-unit-id", lambda t, u, f, w: _registers_frame(t, u + 1, f, w), "timeout", "no valid answer within 0.3 s"),
    ("other-protocol-id", lambda t, u, f, w: b"\x00" * 2 + b"\x00\x07" + _registers_frame(t, u, f, w)[4:],
     "timeout", "no valid answer within 0.3 s"),
    ("silence", lambda t, u, f, w: b"", "timeout", "no valid answer within 0.3 s"),
    ("connection-closed", lambda t, u, f, w: None, "timeout", "no valid answer within 0.3 s"),
    ("input-registers-answer", lambda t, u, f, w: _registers_frame(t, u, 4, w), "bad_answer",
     "bad answer: function code 4, not 3 (read holding)"),
    ("coils-answer", lambda t, u, f, w: MBAP.pack(t, 0, 4, u) + bytes([1, 1, 0x1F]), "bad_answer",
     "bad answer: function code 1, not 3 (read holding)"),
    ("byte-count-short", lambda t, u, f, w: _registers_frame(t, u, f, w, byte_count=2 * len(w) - 2),
     "bad_answer", "bad answer: 4 values for the 5 asked"),
    ("one-register-short", lambda t, u, f, w: _registers_frame(t, u, f, w[:-1]), "bad_answer",
     "bad answer: 4 values for the 5 asked"),
    ("one-register-long", lambda t, u, f, w: _registers_frame(t, u, f, [*w, 0]), "bad_answer",
     "bad answer: 6 values for the 5 asked"),
    *[
        (f"exception-{code}", (lambda c: lambda t, u, f, w: MBAP.pack(t, 0, 3, u) + bytes([f | 0x80, c]))(code),
         "modbus_exception", f"exception code {code} ({name})")
        for code, name in [
            (1, "illegal function"), (2, "illegal data address"), (3, "illegal data value"),
            (4, "device failure"), (5, "acknowledge"), (6, "device busy"), (10, "gateway path unavailable"),
            (11, "gateway target failed to respond"), (12, "unknown"),
        ]
    ],
]  # fmt: skip


class RawModbusServer:
    """A Modbus TCP server in a few lines: answers each read with `answer`, or correctly once `good`."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.good = False
        image = encode_values(WIRE_PROFILE, good_values(WIRE_PROFILE))
        self.words = [image["holding"][a] for a in range(5)]
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                tid, _, length, unit = MBAP.unpack(await reader.readexactly(MBAP.size))
                fc, address, count = struct.unpack(">BHH", await reader.readexactly(length - 1))
                words = self.words[address : address + count]
                reply = (
                    _registers_frame(tid, unit, fc, words) if self.good else self.answer(tid, unit, fc, words)
                )
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def _two_polls(answer: Answer) -> tuple[list[PollResult], int]:
    """Poll until one poll failed and the next (the server answering correctly by then) succeeded."""
    server = RawModbusServer(answer)
    port = await server.start()
    conn = ModbusTcp(protocol="modbus_tcp", host="127.0.0.1", port=port, unit_id=1)
    link = ModbusLink(conn, timeout_s=TIMEOUT_S, retries=0)
    results: list[PollResult] = []
    stop = asyncio.Event()

    async def emit(result: PollResult) -> None:
        results.append(result)
        server.good = True  # from now on the device answers as it should
        if result.blocks is not None:
            stop.set()

    poller = DevicePoller(_device(WIRE_PROFILE), link, conn.unit_id, 0.1, emit)
    try:
        async with asyncio.timeout(10):
            await poller.run(stop)
    finally:
        link.close()
        server.close()
    return results, port


@pytest.mark.parametrize(("case", "answer", "reason", "text"), WIRE_CASES, ids=[c[0] for c in WIRE_CASES])
def test_a_bad_answer_fails_the_poll_with_its_reason_and_the_next_good_one_reads(
    case: str, answer: Answer, reason: str, text: str
) -> None:
    results, port = asyncio.run(_two_polls(answer))
    first, *_, last = results
    assert first.blocks is None, case
    assert first.error is not None
    where = f"device 'dev-ul-wm100' at tcp://127.0.0.1:{port} unit 1 holding 0+5: "
    assert (first.reason, str(first.error).startswith(where + text)) == (reason, True), str(first.error)
    assert first.error.address == f"tcp://127.0.0.1:{port} unit 1 holding 0+5"
    assert len(results) == 2  # the very next poll reads the device again
    assert last.error is None
    assert last.blocks is not None
    reading, _ = process_modbus(_device(WIRE_PROFILE), DeviceState(), last.blocks, last.slot_ns)
    assert isinstance(reading, Reading)
    assert reading.values["volume_m3"] == pytest.approx(1234.5)


def test_a_device_that_refuses_connections_is_a_connection_failure_until_it_listens() -> None:
    async def scenario() -> tuple[list[PollResult], int]:
        server = RawModbusServer(lambda t, u, f, w: None)
        server.good = True
        port = await server.start()
        server.close()  # nothing listens on the port now
        await server.server.wait_closed() if server.server else None
        conn = ModbusTcp(protocol="modbus_tcp", host="127.0.0.1", port=port, unit_id=1)
        link = ModbusLink(conn, timeout_s=TIMEOUT_S, retries=0)
        results: list[PollResult] = []
        stop = asyncio.Event()

        async def emit(result: PollResult) -> None:
            results.append(result)
            if result.blocks is not None:
                stop.set()
            elif server.server is not None and not server.server.is_serving():
                server.server = await asyncio.start_server(server._serve, "127.0.0.1", port)

        poller = DevicePoller(_device(WIRE_PROFILE), link, 1, 0.1, emit)
        try:
            async with asyncio.timeout(10):
                await poller.run(stop)
        finally:
            link.close()
            server.close()
        return results, port

    results, port = asyncio.run(scenario())
    first, last = results[0], results[-1]
    assert first.reason == "connection"
    assert str(first.error) == (
        f"device 'dev-ul-wm100' at tcp://127.0.0.1:{port} unit 1: not connected (retrying with backoff)"
    )
    assert {r.reason for r in results[:-1]} == {"connection"}  # until the backoff lets it try again
    assert last.blocks is not None
    assert last.error is None
