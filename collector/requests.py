"""How a device's register map becomes Modbus read requests: pure, tested without I/O.

Registers of one table are merged into as few requests as the device allows: at most
`max_registers_per_request` per request, bridging gaps of up to `max_gap` unused addresses (profile
settings, default 125 / 0). Coils and discrete inputs merge the same way, counted in bits (up to 2000
per request, the protocol's limit).
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.profile import Profile

#: Protocol limit on bits per read (function codes 1 and 2).
MAX_BITS_PER_REQUEST = 2000


@dataclass(frozen=True)
class ReadRequest:
    """One Modbus read: a table, a start address and a count."""

    table: str
    address: int
    count: int

    @property
    def end(self) -> int:
        """One past the last address read."""
        return self.address + self.count


def plan_requests(profile: Profile) -> list[ReadRequest]:
    """The fewest requests that read every register of the profile's map."""
    if profile.modbus is None:
        return []
    spans: dict[str, list[tuple[int, int]]] = {}
    for reg in profile.modbus.registers:
        spans.setdefault(reg.table, []).append((reg.address, reg.address + reg.count))
    requests: list[ReadRequest] = []
    for table in ("coil", "discrete", "holding", "input"):
        limit = (
            MAX_BITS_PER_REQUEST
            if table in ("coil", "discrete")
            else profile.modbus.max_registers_per_request
        )
        gap = profile.modbus.max_gap
        current: tuple[int, int] | None = None
        for start, end in sorted(spans.get(table, [])):
            if current is not None and start - current[1] <= gap and end - current[0] <= limit:
                current = (current[0], max(current[1], end))
                continue
            if current is not None:
                requests.append(ReadRequest(table, current[0], current[1] - current[0]))
            current = (start, end)
        if current is not None:
            requests.append(ReadRequest(table, current[0], current[1] - current[0]))
    return requests
