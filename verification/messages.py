"""Every finding an evaluator reads, in zh-CN and en, by code: one place to review the wording."""

from __future__ import annotations

from typing import Any

from verification.result import Text

MESSAGES: dict[str, tuple[str, str]] = {
    "insufficient_data": (
        "{meter}: 有效天数占比 {share:.0%}，不足90%的月份：{months}",
        "{meter}: {share:.0%} valid days; months below 90%: {months}",
    ),
    "stuck_meter": (
        "{meter}: {start} 至 {end} 读数不变而相关计量在变化（疑似卡表）",
        "{meter}: no change from {start} to {end} while related meters moved (stuck meter)",
    ),
    "evidence_changed": (
        "{count} 天的数据在生成每日摘要后被改动（{days}）：查明之前，本项声明不能据此认定",
        "the data of {count} day(s) changed after they were digested ({days}): the claim cannot rest on "
        "them until that is explained",
    ),
    "meter_reset": (
        "{meter}: 累计值回落 {count} 次（{times}；换表或清零），未见换表记录",
        "{meter}: the totalizer fell back {count} time(s) ({times}; meter replaced or cleared) "
        "with no replacement record",
    ),
    "meter_replaced": (
        "{meter}: {time} 换表（{old} → {new}，旧表末读数 {final:g}，新表首读数 {first:g}，{by} 记录），"
        "换表区间用量 {use:.3f}",
        "{meter}: meter {old} replaced by {new} at {time} (old meter's final reading {final:g}, new "
        "meter's first {first:g}, recorded by {by}); use across the swap {use:.3f}",
    ),
    "replacement_final_below_last": (
        "{meter}: {time} 的换表记录与读数矛盾：旧表末读数 {final:g} 低于其 {last_time} 的读数 {last:g}",
        "{meter}: the replacement recorded at {time} contradicts the readings: the old meter's final "
        "reading {final:g} is below its reading {last:g} at {last_time}",
    ),
    "replacement_first_above_next": (
        "{meter}: {time} 的换表记录与读数矛盾：新表首读数 {first:g} 高于 {next_time} 的读数 {next:g}",
        "{meter}: the replacement recorded at {time} contradicts the readings: the new meter's first "
        "reading {first:g} is above the reading {next:g} at {next_time}",
    ),
    "replacement_no_drop": (
        "{meter}: {time} 的换表记录与读数矛盾：新表从 {first:g} 起计，但读数未回落（{last_time} 为 {last:g}，"
        "{next_time} 为 {next:g}）",
        "{meter}: the replacement recorded at {time} contradicts the readings: the new meter started at "
        "{first:g}, yet the readings do not fall back ({last:g} at {last_time}, {next:g} at {next_time})",
    ),
    "meter_past_service_life": (
        "{device}: 水表 {serial}（DN{dn}）{installed} 安装，{years} 年使用期限于 {due} 届满，{on} 仍在使用"
        "（JJG 162）",
        "{device}: meter {serial} (DN{dn}) installed {installed} reached the end of its {years}-year service "
        "life on {due} and was still in use on {on} (JJG 162)",
    ),
    "meter_calibration_overdue": (
        "{device}: 水表 {serial}（DN{dn}）上次检定 {since}，{years} 年检定周期于 {due} 届满，{on} 仍未复检"
        "（JJG 162）",
        "{device}: meter {serial} (DN{dn}) last verified {since}: its {years}-year verification period "
        "ended on {due} and it was still not verified again on {on} (JJG 162)",
    ),
    "meter_unregistered": (
        "{device}: 水表登记中没有该设备的水表（编号、口径、检定日期），未核查使用期限与检定周期",
        "{device}: no meter in the registry (serial, size, verification date); its service life and "
        "verification interval are not checked",
    ),
    "estimated_over_10pct": (
        "{meter}: 异常日用量（中位数+3倍四分位距）占总量 {share:.0%}，超过10%",
        "{meter}: spike days (median + 3 IQR) hold {share:.0%} of the total, over 10%",
    ),
    "supply_exceeds_treated": (
        "回用供水量 {supply:.1f} m³ 超过处理水量 {treated:.1f} m³（疑似篡改）",
        "reuse supply {supply:.1f} m3 exceeds the treated volume {treated:.1f} m3 (tampering suspected)",
    ),
    "treatment_capacity": (
        "处理水量 {treated:.1f} m³ 超过 1.1 × 额定流量 × 运行时间 = {capacity:.1f} m³",
        "treated {treated:.1f} m3 exceeds 1.1 x rated flow x runtime = {capacity:.1f} m3",
    ),
    "exceeds_rainfall": (
        "{start} 起 {days} 天的回用量比降雨径流加蓄水变化多 {excess:.1f} m³",
        "over {days} day(s) from {start}, reuse exceeds runoff plus storage change by {excess:.1f} m3",
    ),
    "dry_spell_bound": (
        "无雨期间净回用 {supply:.1f} m³ 超过蓄水池容积 {capacity:.0f} m³",
        "over a rainless spell, supply minus make-up ({supply:.1f} m3) exceeds the tank volume "
        "({capacity:.0f} m3)",
    ),
    "tank_balance": (
        "水池水量平衡残差 {residual:.1f} m³，超过入池水量 {inflow:.0f} m³ 的10%",
        "the tank's mass balance leaves {residual:.1f} m3 unexplained, over 10% of the inflow "
        "{inflow:.0f} m3",
    ),
    "pump_energy": (
        "每立方米耗电 {kwh_per_m3:.3f} 千瓦时，超出合理范围 {low:.2f}-{high:.2f}",
        "{kwh_per_m3:.3f} kWh per m3 pumped is outside the plausible {low:.2f}-{high:.2f}",
    ),
    "clock_skew": (
        "{device}: {count} 条读数的设备时钟偏差超过2分钟（最大 {worst:.0f} 秒），已按接收时间记录",
        "{device}: {count} reading(s) came from a clock more than 2 minutes off (worst {worst:.0f} s), "
        "stored at their receive time",
    ),
    "reuse_measured": ("{facility} 年回用量 {reuse:.1f} m³", "{facility}: measured reuse {reuse:.1f} m3"),
    "pump_volume_vs_runtime": (
        "取水量 {volume:.1f} m³ 与 运行时间×额定流量 {expected:.1f} m³ 相差超过15%",
        "pumped {volume:.1f} m3 differs from runtime x rated flow {expected:.1f} m3 by over 15%",
    ),
    "rainy_day_irrigation": (
        "{days} 个降雨超过5毫米的日子仍在抽水灌溉",
        "pumping for irrigation on {days} day(s) with more than 5 mm of rain",
    ),
    "wash_totalizer_disagrees": (
        "单次洗车用水（{per_wash:.2f} 升/辆）与新水累计表（{totalizer:.2f} 升/辆）不一致",
        "per-wash litres ({per_wash:.2f} L/car) and the fresh-water totalizer ({totalizer:.2f} L/car) "
        "disagree",
    ),
    "implausible_wash_count": (
        "洗车次数 {washes} 超过车位数×天数",
        "{washes} washes exceed parking spaces x days",
    ),
    "per_capita_out_of_range": (
        "人均日用水 {lpcd:.0f} 升，超出 120-180 升范围",
        "per-capita use {lpcd:.0f} L/person/day is outside 120-180",
    ),
    "sub_meters_exceed_master": ("分表之和大于总表", "the sub-meters add up to more than the master meter"),
    "no_meter_data": ("没有该项的计量数据", "no metered data for this claim"),
    "needs_per_wash_evidence": (
        "低于3升/辆的声明需要逐次洗车计量",
        "a claim below 3 L/car needs per-wash measurement",
    ),
    "claim_exceeds_rainfall": (
        "声明的年回用量 {claimed:.0f} m³ 超过降雨可提供的上限 {bound:.0f} m³",
        "the claimed {claimed:.0f} m3/year exceeds what the rainfall allows ({bound:.0f} m3)",
    ),
    "partly": ("实测为声明值的 {fraction:.0%}", "the measurement is {fraction:.0%} of the claim"),
    "below_half": ("实测仅为声明值的 {fraction:.0%}", "the measurement is only {fraction:.0%} of the claim"),
}


def say(code: str, **params: Any) -> Text:
    """The finding `code` in both languages, with its parameters filled in."""
    zh, en = MESSAGES[code]
    return Text(code=code, zh=zh.format(**params), en=en.format(**params))
