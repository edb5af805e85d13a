"""Live status for property managers: latest readings, tanks, reuse totals, device health, alerts."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Path, Query, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from api import alerts, readings
from api.auth import Role, audit
from api.db import Alert
from api.deps import ApiContext, CtxDep, PrincipalDep, Scoped, ScopedDep, find_community
from api.errors import ApiError
from api.live import (
    NS,
    DeviceView,
    TankView,
    conditions,
    days_of_supply,
    device_health,
    local_date,
    local_midnight_ns,
    minutes_to_full,
    period_totals,
    tank_state,
)
from api.schemas import AcknowledgeIn, AlertPublic, CommunityStatus, DeviceStatus, ReuseTotals, TankStatus
from devices.profile import DeviceKind, find_profile
from jieshui.inventory import FacilityKind

router = APIRouter(tags=["status"])

LOOKBACK_S = 30 * 86400  # the latest reading is looked for this far back
DEMAND_DAYS = 7
TREND_S = 3600  # the tank level trend is fitted over the last hour
DEAD_LETTER_S = 86400
RESET_S = 7 * 86400

#: Which totalizer of which facility counts as reuse (tap water replaced), and on which device kind.
REUSE_QUANTITY: dict[FacilityKind, tuple[DeviceKind, str]] = {
    FacilityKind.RAINWATER_HARVESTING: (DeviceKind.RAINWATER_SYSTEM, "supply_m3"),
    FacilityKind.RIVER_WATER: (DeviceKind.RIVER_PUMP, "volume_m3"),
}


def _time(ns: int | None) -> dt.datetime | None:
    return None if ns is None else dt.datetime.fromtimestamp(ns / NS, dt.UTC)


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def community_status(ctx: ApiContext, scoped: Scoped) -> CommunityStatus:
    """Everything a manager's dashboard shows for one community now."""
    c = scoped.community
    now = ctx.now()
    now_ns = int(now.timestamp() * NS)
    store, limits = ctx.store, ctx.limits
    resets = readings.meter_resets(store, c.id, now_ns - RESET_S * NS, now_ns)
    letters = readings.dead_letters(store, c.id, now_ns - DEAD_LETTER_S * NS, now_ns)
    # from the local day before Jan 1: the growth into the year counts, the year before does not
    year_start = local_midnight_ns(local_date(now_ns).replace(month=1, day=1)) - 86400 * NS
    devices: list[DeviceStatus] = []
    views: list[DeviceView] = []
    tanks: list[TankStatus] = []
    tank_views: list[TankView] = []
    reuse: list[ReuseTotals] = []
    for facility, device in c.devices():
        profile = find_profile(device.profile)
        every_s = device.interval_s()
        windows = (int(max(3600.0, 10 * every_s)) * NS, LOOKBACK_S * NS)
        last = readings.latest(store, profile, c.id, device.id, windows, now_ns)
        health = device_health(last.time_ns if last else None, now_ns, every_s, limits)
        values = last.values if last else {}
        fault = values.get("fault_code")
        fault_code = int(fault) if isinstance(fault, int | float) else None
        views.append(DeviceView(device.id, str(profile.kind), health, fault_code, every_s))
        devices.append(
            DeviceStatus(
                device=device.id,
                facility=facility.id,
                kind=str(profile.kind),
                profile=profile.ref,
                last_seen=_time(health.last_seen_ns),
                age_s=health.age_s,
                interval_s=every_s,
                silent=health.silent,
                fault_code=fault_code,
                dead_letters_24h=sum(d.count for d in letters if d.device == device.id),
                resets_7d=sum(1 for e in resets if e.device == device.id),
                readings=values,
            )
        )
        if profile.kind is DeviceKind.RAINWATER_SYSTEM:
            level = values.get("level_pct")
            level_pct = float(level) if isinstance(level, int | float) else None
            capacity = facility.tank_capacity_m3
            stored = level_pct / 100 * capacity if level_pct is not None and capacity else None
            _, demand = ctx.buckets.increments(
                store, profile, c.id, device.id, "supply_m3", now_ns - DEMAND_DAYS * 86400 * NS, now_ns, "1h"
            )
            demand_m3 = float(demand.sum())
            supply_days = days_of_supply(stored, demand_m3, DEMAND_DAYS) if stored is not None else None
            t, lv = readings.recent(
                store, profile, c.id, device.id, "level_pct", now_ns - TREND_S * NS, now_ns
            )
            to_full = minutes_to_full(t, lv)
            _, spilled = ctx.buckets.increments(
                store, profile, c.id, device.id, "overflow_m3", now_ns - TREND_S * NS, now_ns, "1h"
            )
            state = tank_state(level_pct, to_full, supply_days, float(spilled.sum()), limits)
            tank_views.append(
                TankView(device.id, state, _r(level_pct, 1), _r(supply_days, 2), _r(to_full, 0))
            )
            tanks.append(
                TankStatus(
                    facility=facility.id,
                    device=device.id,
                    capacity_m3=capacity,
                    level_pct=_r(level_pct, 2),
                    stored_m3=_r(stored),
                    demand_7d_m3=round(demand_m3, 3),
                    days_of_supply=_r(supply_days, 2),
                    minutes_to_full=_r(to_full, 1),
                    state=state,
                )
            )
        reuse_by = REUSE_QUANTITY.get(facility.kind)
        if reuse_by is not None and profile.kind is reuse_by[0]:
            days, daily = ctx.buckets.increments(
                store, profile, c.id, device.id, reuse_by[1], year_start, now_ns, "1d"
            )
            totals = period_totals(days, daily, now_ns)
            reuse.append(
                ReuseTotals(
                    facility=facility.id,
                    kind=str(facility.kind),
                    device=device.id,
                    quantity=reuse_by[1],
                    today_m3=totals.today,
                    month_m3=totals.month,
                    year_m3=totals.year,
                )
            )
    open_alerts = alerts.sync(ctx.db, c.id, conditions(c.id, tank_views, views, resets, letters), now)
    return CommunityStatus(
        community=c.id,
        name=c.name,
        at=now,
        devices=devices,
        tanks=tanks,
        reuse=reuse,
        reuse_today_m3=round(sum(r.today_m3 for r in reuse), 6),
        reuse_month_m3=round(sum(r.month_m3 for r in reuse), 6),
        reuse_year_m3=round(sum(r.year_m3 for r in reuse), 6),
        alerts=[alerts.public(a) for a in open_alerts],
    )


@router.get("/communities/{community_id}/status", response_model=CommunityStatus)
async def get_status(ctx: CtxDep, scoped: ScopedDep) -> Response:
    """Latest reading per device with its age, tank status, reuse today/this month/this year (Asia/Shanghai),
    device health and the open alerts, as evaluated at `at` (at most JIESHUI_API_STATUS_CACHE_S ago)."""
    body = ctx.status_cache.peek(scoped.community.id)
    if body is None:  # computing it blocks on InfluxDB and SQL: in a worker thread
        body = await run_in_threadpool(_status_json, ctx, scoped)
    return Response(content=body, media_type="application/json")


def _status_json(ctx: ApiContext, scoped: Scoped) -> bytes:
    """The community's status as JSON, computed at most once per `ctx.status_cache_s` seconds."""
    return ctx.status_cache.get(scoped.community.id, lambda: _encoded(ctx, scoped))


def _encoded(ctx: ApiContext, scoped: Scoped) -> bytes:
    return community_status(ctx, scoped).model_dump_json().encode()


@router.get("/communities/{community_id}/alerts", response_model=list[AlertPublic])
def list_alerts(
    ctx: CtxDep,
    scoped: ScopedDep,
    state: str = Query(
        default="open", pattern="^(open|all)$", description="open alerts, or all (history too)"
    ),
    limit: int = Query(default=200, ge=1, le=1000),
) -> list[AlertPublic]:
    """The community's alerts, re-evaluated against the live data first (the status is refreshed too)."""
    ctx.status_cache.put(scoped.community.id, _encoded(ctx, scoped))
    with ctx.db.session() as s:
        q = select(Alert).where(Alert.community == scoped.community.id)
        if state == "open":
            q = q.where(Alert.cleared_at.is_(None))
        rows = s.scalars(q.order_by(Alert.id.desc()).limit(limit))
        return [alerts.public(a) for a in rows]


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertPublic)
def acknowledge(
    ctx: CtxDep, principal: PrincipalDep, body: AcknowledgeIn, alert_id: int = Path(ge=1, le=2**31 - 1)
) -> AlertPublic:
    """Acknowledge an alert (managers of its community, admins). The alert stays open until its
    condition clears; the acknowledgement says someone is on it."""
    now = ctx.now()
    with ctx.db.session() as s:
        row = s.get(Alert, alert_id)
        if row is None or not principal.sees(row.community):
            raise ApiError("alert_not_found", alert=alert_id)
        find_community(ctx, principal, row.community)
        principal.require(Role.MANAGER)
        row.acknowledged_by, row.acknowledged_at, row.acknowledge_note = principal.key_id, now, body.note
        audit(
            s,
            principal.key_id,
            principal.role,
            "alert.acknowledge",
            f"alert/{alert_id}",
            now,
            community=row.community,
            kind=row.kind,
            note=body.note,
        )
        s.flush()
        ctx.status_cache.invalidate(row.community)  # the next status shows the acknowledgement
        return alerts.public(row)


@router.get("/alerts", response_model=list[AlertPublic])
def open_alerts(ctx: CtxDep, principal: PrincipalDep) -> list[AlertPublic]:
    """Open alerts of every community the caller may see, as last evaluated (newest first)."""
    with ctx.db.session() as s:
        rows = s.scalars(
            select(Alert).where(Alert.cleared_at.is_(None)).order_by(Alert.id.desc()).limit(1000)
        )
        return [alerts.public(a) for a in rows if principal.sees(a.community)]
