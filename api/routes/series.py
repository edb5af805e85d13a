"""Series: any measured quantity of a device or of a community's devices, aggregated per window in
InfluxDB (mean, sum, last, min, max; for a totalizer, `sum` is the consumption in the window), as JSON
or CSV. Windows are aligned to Asia/Shanghai (a `1d` window is a local day)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from api.deps import CtxDep, Scoped, ScopedDep
from api.errors import ApiError
from api.live import NS, bucket_increments
from api.schemas import DeviceSeries, SeriesPoint, SeriesResponse
from devices.profile import Profile, find_profile
from devices.registers import rollover_values
from jieshui.inventory import Device
from store.influx import InfluxStore, quote_ident

router = APIRouter(tags=["series"])

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
WINDOW = re.compile(r"^([1-9][0-9]{0,5})(s|m|h|d)$")
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # readings are stamped within these (nanosecond epoch)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
Agg = Literal["mean", "sum", "last", "min", "max"]

Quantity = Annotated[
    str,
    Query(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="a quantity of the device's profile, e.g. level_pct, supply_m3",
    ),
]
Start = Annotated[
    dt.datetime | None, Query(description="ISO 8601; without a zone: Asia/Shanghai. Default: end - 1 day")
]
End = Annotated[
    dt.datetime | None, Query(description="ISO 8601; without a zone: Asia/Shanghai. Default: now")
]
Window = Annotated[str, Query(pattern=WINDOW.pattern, description="1-999999 s|m|h|d, e.g. 15m, 1h, 1d")]
Format = Annotated[Literal["json", "csv"], Query()]


def _aware(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=SHANGHAI) if t.tzinfo is None else t


def _ns(t: dt.datetime) -> int:
    return round(t.timestamp() * 1e6) * 1000


def _select(profile: Profile, quantity: str, agg: Agg) -> tuple[str, bool]:
    """The aggregate expression, and whether the result is totalizer growth (FIRST/LAST pairs)."""
    q = quote_ident(quantity)
    if agg == "sum" and profile.quantity[quantity].totalizer:
        return f"FIRST({q}) AS f, LAST({q}) AS l", True
    return f"{agg.upper()}({q}) AS v", False


def _device_series(
    ctx_store: InfluxStore,
    scoped: Scoped,
    device: Device,
    profile: Profile,
    quantity: str,
    agg: Agg,
    window: str,
    window_s: int,
    start_ns: int,
    end_ns: int,
) -> DeviceSeries:
    expr, growth = _select(profile, quantity, agg)
    # Growth needs the window before `start` too: the step into the first window counts in it.
    a = start_ns - window_s * NS if growth else start_ns
    found = ctx_store.query(
        f"SELECT {expr} FROM {quote_ident(str(profile.kind))} "  # noqa: S608 (quoted identifiers, bound values)
        f"WHERE community = $c AND device = $d AND time >= $a AND time < $b "
        f"GROUP BY time({window}) fill(none) tz('Asia/Shanghai')",
        params={"c": scoped.community.id, "d": device.id, "a": a, "b": end_ns},
    )
    points: list[SeriesPoint] = []
    if found and len(found[0]):
        s = found[0]
        t = s.time.astype(np.int64)
        if growth:
            t, v = bucket_increments(
                t, s.values("f"), s.values("l"), rollover_values(profile).get(quantity), window_s * NS
            )
        else:
            v = s.values("v")
        keep = t >= start_ns
        points = [
            SeriesPoint(
                time=dt.datetime.fromtimestamp(int(ti) / NS, dt.UTC),
                value=None if math.isnan(x) else float(x),
            )
            for ti, x in zip(t[keep], v[keep], strict=True)
        ]
    return DeviceSeries(device=device.id, kind=str(profile.kind), points=points)


def series(
    ctx: CtxDep,
    scoped: Scoped,
    device_id: str | None,
    quantity: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    agg: Agg,
    window: str,
    fmt: str,
) -> SeriesResponse | Response:
    targets: list[tuple[Device, Profile]] = []
    if device_id is not None:
        _, device, profile = scoped.device(device_id)
        known = [q.name for q in profile.quantities]
        if quantity not in known:
            raise ApiError("unknown_quantity", scope=device_id, quantity=quantity, known=", ".join(known))
        targets.append((device, profile))
    else:
        known_all: set[str] = set()
        for _, device in scoped.community.devices():
            profile = find_profile(device.profile)
            known_all.update(q.name for q in profile.quantities)
            if quantity in profile.quantity:
                targets.append((device, profile))
        if not targets:
            raise ApiError(
                "unknown_quantity",
                scope=scoped.community.id,
                quantity=quantity,
                known=", ".join(sorted(known_all)),
            )
    if any(p.quantity[quantity].type not in ("float", "int") for _, p in targets):
        raise ApiError("not_numeric", quantity=quantity)
    end_t = _aware(end) if end is not None else ctx.now()
    start_t = (
        _aware(start)
        if start is not None
        else max(end_t, EARLIEST + dt.timedelta(days=1)) - dt.timedelta(days=1)
    )
    if not EARLIEST <= start_t < end_t <= LATEST:
        raise ApiError("bad_time_range", start=start_t.isoformat(), end=end_t.isoformat())
    start_ns, end_ns = _ns(start_t), _ns(end_t)
    m = WINDOW.match(window)
    if m is None:  # the Query pattern already refused it; kept for callers that bypass FastAPI
        raise ApiError("invalid_request", fields="window")
    window_s = int(m.group(1)) * UNIT_S[m.group(2)]
    points = math.ceil((end_ns - start_ns) / (window_s * NS)) * len(targets)
    if points > ctx.max_points:
        raise ApiError("too_many_points", points=points, limit=ctx.max_points)
    out = SeriesResponse(
        community=scoped.community.id,
        quantity=quantity,
        unit=targets[0][1].quantity[quantity].unit,
        agg=agg,
        window=window,
        start=start_t,
        end=end_t,
        series=[
            _device_series(ctx.store, scoped, d, p, quantity, agg, window, window_s, start_ns, end_ns)
            for d, p in targets
        ],
    )
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["time", "community", "device", "quantity", "unit", "agg", "window", "value"])
        for s in out.series:
            for p in s.points:
                value = "" if p.value is None else repr(p.value)
                w.writerow(
                    [
                        p.time.isoformat().replace("+00:00", "Z"),
                        out.community,
                        s.device,
                        quantity,
                        out.unit,
                        agg,
                        window,
                        value,
                    ]
                )
        name = f"{out.community}-{device_id or 'all'}-{quantity}-{agg}-{window}.csv"
        return Response(
            buf.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return out


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "JSON, or CSV with format=csv",
    }
}


@router.get("/communities/{community_id}/series", response_model=SeriesResponse, responses=_RESPONSES)
def community_series(
    ctx: CtxDep,
    scoped: ScopedDep,
    quantity: Quantity,
    start: Start = None,
    end: End = None,
    agg: Agg = "mean",
    window: Window = "1h",
    format: Format = "json",
) -> SeriesResponse | Response:
    """One quantity for every device of the community that measures it."""
    return series(ctx, scoped, None, quantity, start, end, agg, window, format)


@router.get(
    "/communities/{community_id}/devices/{device_id}/series",
    response_model=SeriesResponse,
    responses=_RESPONSES,
)
def device_series(
    ctx: CtxDep,
    scoped: ScopedDep,
    quantity: Quantity,
    device_id: str = Path(min_length=1, max_length=64),
    start: Start = None,
    end: End = None,
    agg: Agg = "mean",
    window: Window = "1h",
    format: Format = "json",
) -> SeriesResponse | Response:
    """One quantity of one device."""
    return series(ctx, scoped, device_id, quantity, start, end, agg, window, format)
