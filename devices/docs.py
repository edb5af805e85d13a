"""Generate docs/devices.md from the profiles: the documented register maps are the tested ones.

`jieshui profiles docs` writes it; `jieshui profiles docs --check` (run by the test suite) fails if
the file differs from what the profiles say.
"""

from __future__ import annotations

import json

from devices.codec import register_count
from devices.payload import payload_model
from devices.profile import Profile, load_profiles, rollover_of

TABLE_FC = {
    "holding": "3 (holding)",
    "input": "4 (input)",
    "coil": "1 (coil)",
    "discrete": "2 (discrete input)",
}


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def profile_section(profile: Profile) -> list[str]:
    """The markdown of one profile."""
    out = [
        f"## {profile.ref}: {profile.vendor} {profile.model}",
        "",
        f"{profile.description.en} / {profile.description.zh}",
        "",
        f"Kind (InfluxDB measurement): `{profile.kind}`. Device clock: {profile.clock}.",
        "",
        "| quantity (field) | unit | type | range | totalizer | description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for q in profile.quantities:
        rng = f"{_num(q.min)}..{_num(q.max)}" if q.min is not None or q.max is not None else ""
        if q.values:
            rng = ", ".join(q.values)
        out.append(
            f"| `{q.name}` | {q.unit} | {q.type} | {rng} | {'yes' if q.totalizer else ''} "
            f"| {q.description.en} / {q.description.zh} |"
        )
    out.append("")
    if profile.modbus is not None:
        m = profile.modbus
        out += [
            f"Modbus: at most {m.max_registers_per_request} registers per request, gaps of up to "
            f"{m.max_gap} unused registers merged; 32/64-bit default byte order `{m.byte_order}`. "
            "Addresses are protocol addresses (0-based, as on the wire; add 1 for mbpoll's default "
            "1-based references).",
            "",
            "| quantity | function code | address | registers | type | byte order "
            "| value = raw x scale + offset | rollover (raw) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in sorted(m.registers, key=lambda r: (r.table, r.address)):
            total = profile.quantity[r.quantity].totalizer
            roll = rollover_of(r) if total else None
            out.append(
                f"| `{r.quantity}` | {TABLE_FC[r.table]} | {r.address} | {register_count(r.type)} | {r.type} "
                f"| {m.order_of(r) if r.type != 'bool' else ''} | x {r.scale:g} + {r.offset:g} "
                f"| {'' if roll is None else roll} |"
            )
        out.append("")
    if profile.mqtt is not None:
        s = profile.mqtt
        out += [
            "MQTT: JSON on `jieshui/<district>/<community>/<device>/telemetry`, QoS 1; retained "
            '`.../status` `{"online": true}` with a last will `{"online": false}`. '
            f"Timestamp key `{s.timestamp_key}` ({s.timestamp_format}); sequence key `{s.sequence_key}`."
            + (f" Reports at least every {s.report_interval_s:g} s." if s.report_interval_s else ""),
            "",
            "| key | quantity | JSON type | required | quantity = value x |",
            "| --- | --- | --- | --- | --- |",
        ]
        for f in s.fields:
            values = f" ({', '.join(f.values)})" if f.values else ""
            out.append(
                f"| `{f.key}` | {f'`{f.quantity}`' if f.quantity else '(metadata)'} | {f.type}{values} "
                f"| {'yes' if f.required else 'no'} | {f.scale:g} |"
            )
        schema = json.dumps(payload_model(profile.ref).model_json_schema(), indent=2, ensure_ascii=False)
        out += [
            "",
            "<details><summary>JSON Schema</summary>",
            "",
            "```json",
            schema,
            "```",
            "",
            "</details>",
            "",
        ]
    return out


def render() -> str:
    """The whole of docs/devices.md."""
    profiles = [p for k, p in sorted(load_profiles().items()) if "@" in k]
    lines = [
        "# Devices",
        "",
        "<!-- Generated from devices/profiles/*.yaml by `jieshui profiles docs`; do not edit by hand. -->",
        "",
        "Each device model Jieshui reads is a profile: a data file in `devices/profiles/`. A profile names",
        "the quantities the device measures (InfluxDB field names, with units and valid ranges), its Modbus",
        "register map and/or its MQTT payload. Byte orders are named by the order of the value's bytes on",
        "the wire (`ABCD` big-endian, `CDAB` word-swapped, `BADC` byte-swapped, `DCBA` little-endian).",
        "A totalizer is cumulative; consumption is the difference between readings, and a register wraps",
        "to 0 at its rollover value.",
        "",
        "| profile | vendor and model | kind | faces |",
        "| --- | --- | --- | --- |",
    ]
    for p in profiles:
        faces = " + ".join(x for x, on in (("Modbus", p.modbus), ("MQTT", p.mqtt)) if on)
        lines.append(f"| [{p.ref}](#{p.name}{p.version}-{p.vendor.lower()}-{p.model.lower()}) "
                     f"| {p.vendor} {p.model} | `{p.kind}` | {faces} |")  # fmt: skip
    lines.append("")
    for p in profiles:
        lines += profile_section(p)
    return "\n".join(lines).rstrip() + "\n"
