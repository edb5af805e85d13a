"""Alerts in SQL: the conditions seen now (`api.live.conditions`) opened, refreshed and cleared, so an
acknowledgement sticks to an alert while its condition lasts; and the words a manager reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db import Alert, Database
from api.live import Condition
from api.schemas import AlertPublic, Bilingual

#: kind -> (zh-CN, en); they quote the alert's params by name.
ALERT_MESSAGES: dict[str, tuple[str, str]] = {
    "overflow": (
        "{device}：水池即将溢流或正在溢流（液位 {level_pct}%）",
        "{device}: the tank is overflowing or about to (level {level_pct}%)",
    ),
    "run_dry": (
        "{device}：按近7天用水量，蓄水仅够 {days_of_supply} 天",
        "{device}: stored water lasts {days_of_supply} day(s) at the last 7 days' demand",
    ),
    "low_level": ("{device}：水池低液位（{level_pct}%）", "{device}: low tank level ({level_pct}%)"),
    "pump_fault": ("{device}：设备故障，故障代码 {fault_code}", "{device}: fault, code {fault_code}"),
    "device_silent": (
        "{device}：已 {age_s} 秒无数据（上报间隔 {interval_s} 秒）",
        "{device}: silent for {age_s} s (reports every {interval_s} s)",
    ),
    "meter_reset": (
        "{device}：{quantity} 累计值于 {at} 回落（{previous} → {current}），请核实是否换表",
        "{device}: {quantity} fell back at {at} ({previous} -> {current}); was the meter replaced?",
    ),
    "dead_letter": (
        "{device}：24小时内 {count} 条数据被拒收（{reason}）：{message}",
        "{device}: {count} input(s) refused in 24 h ({reason}): {message}",
    ),
}


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return "-" if value is None else value


def describe(alert: Alert) -> Bilingual:
    zh, en = ALERT_MESSAGES[alert.kind]
    params = {k: _fmt(v) for k, v in alert.params.items()}
    params.setdefault("device", alert.device or "-")
    try:
        return Bilingual(zh=zh.format(**params), en=en.format(**params))
    except (KeyError, IndexError):  # an alert stored by an older version, with other params
        return Bilingual(zh=zh, en=en)


def public(alert: Alert) -> AlertPublic:
    return AlertPublic(
        id=alert.id,
        community=alert.community,
        device=alert.device,
        kind=alert.kind,
        severity=alert.severity,
        message=describe(alert),
        params=alert.params,
        active=alert.cleared_at is None,
        first_seen=alert.first_seen,
        last_seen=alert.last_seen,
        cleared_at=alert.cleared_at,
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=alert.acknowledged_at,
        acknowledge_note=alert.acknowledge_note,
    )


def _open(session: Session, community: str) -> dict[str, Alert]:
    rows = session.scalars(select(Alert).where(Alert.community == community, Alert.cleared_at.is_(None)))
    return {a.fingerprint: a for a in rows}


def sync(db: Database, community: str, seen: list[Condition], now: dt.datetime) -> list[Alert]:
    """Open alerts for new conditions, refresh those still seen, clear the rest; the open ones, oldest
    first. A concurrent request that opened the same alert first wins (unique `open_key`)."""
    for _attempt in range(3):
        try:
            with db.session() as s:
                current = _open(s, community)
                fingerprints = set()
                for c in seen:
                    fingerprints.add(c.fingerprint)
                    row = current.get(c.fingerprint)
                    if row is None:
                        s.add(
                            Alert(
                                fingerprint=c.fingerprint,
                                open_key=c.fingerprint,
                                community=community,
                                device=c.device,
                                kind=c.kind,
                                severity=c.severity,
                                params=dict(c.params),
                                first_seen=now,
                                last_seen=now,
                            )
                        )
                    else:
                        row.last_seen, row.params, row.severity = now, dict(c.params), c.severity
                for fp, row in current.items():
                    if fp not in fingerprints:
                        row.cleared_at, row.open_key = now, None
            break
        except IntegrityError:
            continue  # another request opened one of these alerts meanwhile: read again
    with db.session() as s:
        return sorted(_open(s, community).values(), key=lambda a: (a.first_seen, a.id))
