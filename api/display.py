"""The community display page: a public, read-only page per community for an LED screen or a kiosk in
the estate (api/routes/display.py serves it). Pure functions from the community's live status (the
figures of GET /communities/{id}/status, never recomputed), its car washes per day and class
(api.readings.washes_per_day) and its application-form figures to the page's numbers, and from those
numbers to HTML. The page shows aggregates and the community's name only: no device, facility or
meter, no contact, phone or address, nothing of the district; every text is escaped.

Formulas (docs/api.md, "Community display page"; also in small type on the page):
- car washes' saving against the quota: sum over vehicle classes of washes x quota - fresh litres
  (DOMAIN.md: saving = sum of washes x (quota - measured L/car)); quotas of the notice
  (沪水务〔2020〕610号): sedan 40, small 50, medium 55, large 90 L per car; a wash naming no class
  counts at the lowest quota, 40 L;
- a household's daily use = L per person per day x population / households (the form's 人口, 户数),
  per person: the community's own `per_capita_use` claim (of this year, else the latest before it,
  else the earliest), or, without one, 150 L, the middle of GB/T 50331's 120-180 for Shanghai;
- water saved = rainwater reused + river water used instead of tap water + the car washes' saving;
  the equivalent households = water saved (L) / a household's daily use (L).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from html import escape
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from api.errors import Lang
from api.schemas import CommunityStatus
from jieshui.inventory import SHANGHAI, Community, FacilityKind, Measure, VehicleClass

#: Litres per car of the notice's quotas (沪水务〔2020〕610号, DOMAIN.md; GB 50015 ranges).
WASH_QUOTA_L: dict[str, float] = {
    VehicleClass.SEDAN: 40.0,
    VehicleClass.SMALL: 50.0,
    VehicleClass.MEDIUM: 55.0,
    VehicleClass.LARGE: 90.0,
}
#: A wash whose unit named no vehicle class: the lowest quota, so the saving is never overstated.
UNCLASSIFIED_QUOTA_L = min(WASH_QUOTA_L.values())
#: L per person per day without a claim of the community's own: the middle of GB/T 50331's range for
#: Shanghai (zone 3, 120-180; DOMAIN.md).
STANDARD_LPCD = 150.0
#: How often the page fetches its figures again (the status is reused for JIESHUI_API_STATUS_CACHE_S);
#: without script, it reloads itself five times as seldom.
REFRESH_S = 60

_HERE = Path(__file__).parent
#: The page's style sheet and script, inline: the Content-Security-Policy admits exactly these bytes.
CSS = (_HERE / "display.css").read_text(encoding="utf-8")
JS = (_HERE / "display.js").read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


#: Nothing but the inline style and script above, fetches of the page's own figures and the empty
#: icon; no frames, forms, plugins or base URL.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(JS)}; connect-src 'self'; "
    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Every answer of the display routes, the errors included: never indexed, cached or framed, and the
#: link (a secret) never sent on as a referrer.
HEADERS = {
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class WashTotals:
    """A community's car washes this month and this year (Asia/Shanghai), per vehicle class ("" for
    washes that named none): washes and fresh litres."""

    washes_month: dict[str, float]
    washes_year: dict[str, float]
    fresh_l_month: float
    fresh_l_year: float


def wash_saving_l(washes: dict[str, float], fresh_l: float) -> float:
    """Litres saved against the quotas: sum over classes of washes x quota, less the fresh litres used."""
    quota = sum(n * WASH_QUOTA_L.get(cls, UNCLASSIFIED_QUOTA_L) for cls, n in washes.items())
    return quota - fresh_l


def per_capita_lpcd(community: Community, year: int) -> tuple[float, int | None]:
    """L per person per day and the year of the claim it comes from (None: the standard figure)."""
    claims = sorted(
        (c for c in community.claims if c.measure is Measure.PER_CAPITA_USE), key=lambda c: c.year
    )
    if not claims:
        return STANDARD_LPCD, None
    earlier = [c for c in claims if c.year <= year]
    claim = earlier[-1] if earlier else claims[0]
    return claim.value, claim.year


class DisplayNumbers(BaseModel):
    """The page's figures. None: the community has no such facility (its tile is not shown), or, for
    the tank, no level reading."""

    model_config = ConfigDict(extra="forbid")

    rain_month_m3: float | None
    rain_year_m3: float | None
    river_month_m3: float | None
    river_year_m3: float | None
    washes_month: int | None
    washes_year: int | None
    wash_l_per_car_year: float | None  # fresh litres per wash this year (None: no wash yet)
    wash_saved_month_m3: float | None
    wash_saved_year_m3: float | None
    tank_level_pct: float | None  # the tanks' level, weighted by capacity
    tank_stored_m3: float | None
    tank_capacity_m3: float | None
    saved_month_m3: float
    saved_year_m3: float
    lpcd: float  # L per person per day
    household_l_per_day: float
    households_month: float  # water saved this month = the daily use of this many households
    households_year: float


class DisplayFigures(BaseModel):
    """GET /display/{token}/data: the figures of a community's display page and their texts as the
    page shows them in `lang` (the page's script puts them in place)."""

    model_config = ConfigDict(extra="forbid")

    name: str  # the community's display name in `lang`
    lang: Lang
    at: dt.datetime  # when the status was evaluated
    figures: DisplayNumbers
    texts: dict[str, str]


@dataclass(frozen=True)
class PageFacts:
    """What the page says about the community besides its figures (the small print's inputs)."""

    name: str
    name_en: str | None
    population: int
    households: int
    lpcd_claim_year: int | None
    tanks: int  # how many tanks the community has (0: no tank tile)


def _sum(values: list[float]) -> float | None:
    return round(sum(values), 6) if values else None


def numbers(
    status: CommunityStatus, community: Community, washes: WashTotals | None, year: int
) -> tuple[DisplayNumbers, PageFacts]:
    """The page's figures from the community's status (its own rounding kept: the page shows the
    API's numbers), its car washes and its form."""
    rain = [r for r in status.reuse if r.kind == FacilityKind.RAINWATER_HARVESTING]
    river = [r for r in status.reuse if r.kind == FacilityKind.RIVER_WATER]
    tanks = [t for t in status.tanks if t.level_pct is not None and t.capacity_m3]
    capacity = sum(t.capacity_m3 or 0.0 for t in tanks)
    level = sum((t.level_pct or 0.0) * (t.capacity_m3 or 0.0) for t in tanks) / capacity if tanks else None
    stored = [t.stored_m3 for t in tanks if t.stored_m3 is not None]
    saved_month = saved_year = None
    if washes is not None:
        saved_month = round(wash_saving_l(washes.washes_month, washes.fresh_l_month) / 1000, 6)
        saved_year = round(wash_saving_l(washes.washes_year, washes.fresh_l_year) / 1000, 6)
    n_year = round(sum(washes.washes_year.values())) if washes is not None else None
    lpcd, claim_year = per_capita_lpcd(community, year)
    household_l = lpcd * community.population / community.households
    reuse = {
        (name, period): _sum([getattr(r, f"{period}_m3") for r in facilities])
        for name, facilities in (("rain", rain), ("river", river))
        for period in ("month", "year")
    }
    total_month = sum(x or 0.0 for x in (reuse["rain", "month"], reuse["river", "month"], saved_month))
    total_year = sum(x or 0.0 for x in (reuse["rain", "year"], reuse["river", "year"], saved_year))
    figures = DisplayNumbers(
        rain_month_m3=reuse["rain", "month"],
        rain_year_m3=reuse["rain", "year"],
        river_month_m3=reuse["river", "month"],
        river_year_m3=reuse["river", "year"],
        washes_month=round(sum(washes.washes_month.values())) if washes is not None else None,
        washes_year=n_year,
        wash_l_per_car_year=round(washes.fresh_l_year / n_year, 2) if washes is not None and n_year else None,
        wash_saved_month_m3=saved_month,
        wash_saved_year_m3=saved_year,
        tank_level_pct=round(level, 2) if level is not None else None,
        tank_stored_m3=_sum(stored),
        tank_capacity_m3=round(capacity, 3) if tanks else None,
        saved_month_m3=round(total_month, 6),
        saved_year_m3=round(total_year, 6),
        lpcd=lpcd,
        household_l_per_day=round(household_l, 1),
        households_month=round(total_month * 1000 / household_l, 1),
        households_year=round(total_year * 1000 / household_l, 1),
    )
    facts = PageFacts(
        community.name, community.name_en, community.population, community.households, claim_year,
        len(status.tanks),
    )  # fmt: skip
    return figures, facts


# --- texts -----------------------------------------------------------------------------------------

#: key -> (zh-CN, en). Units and labels; the figures are put in by `render`.
TEXT: dict[str, tuple[str, str]] = {
    "title": ("节水型小区 · 用水公示", "Water-saving community · water at a glance"),
    "updated": ("数据更新于", "Figures as of"),
    "stale": ("暂时无法更新，显示的是上次的数据", "cannot update now; these are the last figures"),
    "toggle": ("English", "中文"),
    "rain": ("本月雨水回用", "Rainwater reused this month"),
    "river": ("本月河道水替代自来水", "River water instead of tap water this month"),
    "washes": ("本月微水洗车", "Micro-water car washes this month"),
    "wash_saved": ("本月洗车比定额节水", "Car washes' saving vs the quota this month"),
    "tank": ("蓄水池当前水位", "Rainwater tank level now"),
    "households": ("本年节水量相当于", "This year's saving equals the daily use of"),
    "households_unit": ("户家庭", "households"),
    "households_tail": ("一天的用水", ""),
    "year": ("本年", "This year"),
    "cars": ("辆", "cars"),
    "per_car": ("平均每辆用水 {n} L", "{n} L per car"),
    "stored": ("存水", "stored"),
    "of_capacity": ("容量", "of"),
    "saved_total": ("本年共节水 {n} m³", "{n} m³ saved this year"),
    "this_month": ("本月 {n} m³", "{n} m³ this month"),
    "no_reading": ("暂无读数", "no reading"),
}

#: The small print: how each figure is made (formulas, sources), with the community's own inputs.
SMALL_PRINT: dict[Lang, list[str]] = {
    "zh-CN": [
        "本月、本年按上海时间计。雨水回用量为回用供水累计表的增量，河道水为取水泵累计表的增量"
        "（与管理平台的实时状态一致）。",
        "洗车节水 = Σ各车型洗车次数 ×（用水定额 − 实测每辆新水用量）；"
        "定额（升/辆）：轿车 40、小型车 50、中型车 55、大型车 90（沪水务〔2020〕610号）；"
        "未注明车型的按 40 升计。",
        "户日用水 = 人均日用水 {lpcd} 升 × 人口 {population} ÷ 户数 {households} = {household_l} 升"
        "（{lpcd_source}）；相当户数 = 节水量 ÷ 户日用水；节水量 = 雨水回用 + 河道水 + 洗车节水。",
    ],
    "en": [
        "Months and years in Shanghai time. Rainwater reused: the growth of the reuse supply meter; river "
        "water: the growth of the pump's meter (the same figures as the management platform's live status).",
        "Car washes' saving = sum over vehicle classes of washes x (quota - fresh litres measured per car); "
        "quotas (L per car): sedan 40, small 50, medium 55, large 90 (Shanghai Water Authority notice "
        "2020-610); a wash naming no class counts at 40 L.",
        "A household's daily use = {lpcd} L per person per day x population {population} / households "
        "{households} = {household_l} L ({lpcd_source}); households = water saved / a household's daily use; "
        "water saved = rainwater reused + river water + the car washes' saving.",
    ],
}
LPCD_SOURCE: dict[Lang, tuple[str, str]] = {
    "zh-CN": ("小区 {year} 年申报的人均日用水量", "GB/T 50331 上海地区居民生活用水 120–180 升/人·日 的中值"),
    "en": (
        "the community's own figure per person, claimed for {year}",
        "the middle of GB/T 50331's 120-180 L for Shanghai",
    ),
}


def _t(key: str, lang: Lang) -> str:
    zh, en = TEXT[key]
    return zh if lang == "zh-CN" else en


def _m3(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:,.1f}"


def _local(at: dt.datetime) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def texts(figures: DisplayNumbers, at: dt.datetime, lang: Lang) -> dict[str, str]:
    """Each figure as the page shows it (key: the figure's name; absent: no such tile)."""
    out: dict[str, str] = {"at": _local(at)}
    for key, value in figures.model_dump().items():
        if value is None:
            continue
        if key.endswith("_m3"):
            out[key] = _m3(value)
        elif key in ("washes_month", "washes_year"):
            out[key] = f"{value:,d}"
        elif key == "tank_level_pct":
            out[key] = f"{value:.0f}"
        elif key in ("households_month", "households_year"):
            out[key] = f"{value:,.0f}"
        elif key in ("wash_l_per_car_year", "household_l_per_day", "lpcd"):
            out[key] = f"{value:,.1f}"
    if figures.tank_level_pct is None and figures.tank_capacity_m3 is None:
        out["tank_level_pct"] = "—"
    return out


def figures_payload(figures: DisplayNumbers, facts: PageFacts, at: dt.datetime, lang: Lang) -> DisplayFigures:
    """GET /display/{token}/data's answer."""
    return DisplayFigures(
        name=display_name(facts, lang), lang=lang, at=at, figures=figures, texts=texts(figures, at, lang)
    )


# --- the page ----------------------------------------------------------------------------------------


def _fig(key: str, shown: dict[str, str], figures: DisplayNumbers, cls: str = "") -> str:
    """A figure's element: the text, the raw number in `data-value` (what the page's script updates)."""
    value = getattr(figures, key, None)
    raw = "" if value is None else _js_number(value)
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<span{klass} data-figure="{escape(key)}" data-value="{escape(raw)}">'
        f"{escape(shown.get(key, '—'))}</span>"
    )


def _js_number(value: float) -> str:
    """A number as JavaScript's String() writes it (what the page's script puts in `data-value`)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _tile(kind: str, label: str, main: str, unit: str, sub: str) -> str:
    return (
        f'<section class="tile tile-{kind}"><h2>{escape(label)}</h2>'
        f'<p class="main">{main}<span class="unit">{escape(unit)}</span></p>'
        f'<p class="sub">{sub}</p></section>'
    )


def render(figures: DisplayNumbers, facts: PageFacts, at: dt.datetime, lang: Lang) -> str:
    """The whole page, in `lang`, every text escaped."""
    shown = texts(figures, at, lang)

    def t(key: str, figure: str = "") -> str:
        """The text, escaped, with `figure` (markup) in place of its `{n}`."""
        return escape(_t(key, lang)).replace("{n}", figure)

    def f(key: str) -> str:
        return _fig(key, shown, figures)

    year = t("year")
    tiles: list[str] = []
    if figures.rain_month_m3 is not None:
        tiles.append(
            _tile("rain", _t("rain", lang), f("rain_month_m3"), "m³", f"{year} {f('rain_year_m3')} m³")
        )
    if figures.river_month_m3 is not None:
        tiles.append(
            _tile("river", _t("river", lang), f("river_month_m3"), "m³", f"{year} {f('river_year_m3')} m³")
        )
    if figures.washes_month is not None:
        per_car = (
            f" · {t('per_car', f('wash_l_per_car_year'))}" if figures.wash_l_per_car_year is not None else ""
        )
        tiles.append(
            _tile("washes", _t("washes", lang), f("washes_month"), _t("cars", lang),
                  f"{year} {f('washes_year')} {t('cars')}{per_car}")
        )  # fmt: skip
        tiles.append(
            _tile("wash-saved", _t("wash_saved", lang), f("wash_saved_month_m3"), "m³",
                  f"{year} {f('wash_saved_year_m3')} m³")
        )  # fmt: skip
    if facts.tanks:
        level = figures.tank_level_pct
        if level is not None:
            sub = (
                f'<meter min="0" max="100" low="15" high="95" optimum="50" value="{level:.2f}" '
                f'data-meter="tank_level_pct"></meter>'
                f"{t('stored')} {f('tank_stored_m3')} m³ · {t('of_capacity')} {f('tank_capacity_m3')} m³"
            )
        else:
            sub = t("no_reading")
        tiles.append(_tile("tank", _t("tank", lang), f("tank_level_pct"), "%", sub))
    tail = f"{t('households_tail')}<br>" if lang == "zh-CN" else ""
    comma = "，" if lang == "zh-CN" else ", "
    saved = f"{t('saved_total', f('saved_year_m3'))}{comma}{t('this_month', f('saved_month_m3'))}"
    tiles.append(
        _tile("households", _t("households", lang), f("households_year"), _t("households_unit", lang),
              tail + saved)
    )  # fmt: skip
    source_claim, source_standard = LPCD_SOURCE[lang]
    claimed = facts.lpcd_claim_year
    inputs = {
        "lpcd": shown["lpcd"],
        "population": f"{facts.population:,d}",
        "households": f"{facts.households:,d}",
        "household_l": shown["household_l_per_day"],
        "lpcd_source": source_claim.format(year=claimed) if claimed is not None else source_standard,
    }
    small = "".join(f"<li>{escape(line.format(**inputs))}</li>" for line in SMALL_PRINT[lang])
    name = display_name(facts, lang)
    other = "en" if lang == "zh-CN" else "zh-CN"
    return f"""<!DOCTYPE html>
<html lang="{lang}" data-refresh-s="{REFRESH_S}">
<head>
<meta charset="utf-8">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<noscript><meta http-equiv="refresh" content="{REFRESH_S * 5}"></noscript>
<link rel="icon" href="data:,">
<title>{escape(name)} · {t("title")}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1 class="name">{escape(name)}</h1>
<p class="title">{t("title")}</p>
<p class="updated">{t("updated")} {f("at")}<span class="stale">{t("stale")}</span></p>
<a class="lang" href="?lang={other}" hreflang="{other}">{t("toggle")}</a>
</header>
<main>
{"".join(tiles)}
</main>
<footer><ol>{small}</ol></footer>
<script>{JS}</script>
</body>
</html>
"""


def display_name(facts: PageFacts, lang: Lang) -> str:
    """The community's name in `lang` (its Chinese name when it has no English one)."""
    return (facts.name_en or facts.name) if lang == "en" else facts.name
