"""The evaluation report: one self-contained HTML page (inline SVG charts, no network), zh-CN by
default or en, and a PDF of it printed by headless Chromium.

Every string that comes from an inventory or a device is escaped (a community named `<script>`
renders as text). Sections: verdicts, data coverage, monthly measured against claimed, rainfall and
reuse, tank storage, litres per car wash, the edit log, the data's provenance, and the signatures of
the verdict the report presents (docs/evidence.md, "Signatures": a signature of the report itself is a
detached file, since a document cannot contain its own signature).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from zoneinfo import ZoneInfo

from devices.profile import find_profile
from jieshui.errors import JieshuiError
from jieshui.inventory import Site
from verification.result import ClaimResult, VerificationResult

LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "title": "节水型小区评估报告",
        "verdicts": "一、核查结论",
        "coverage": "二、数据完整性",
        "monthly": "三、逐月实测与声明",
        "rain": "四、降雨与雨水回用",
        "tank": "五、蓄水池蓄水量",
        "wash": "六、单车洗车用水分布",
        "editlog": "七、数据核查记录",
        "provenance": "八、数据来源",
        "signature": "九、签名",
        "claim": "声明",
        "claimed": "声明值",
        "measured": "实测值",
        "basis": "其中：计量 {measured}，估计（编辑记录）{estimated}，核定 {verified} {unit}",
        "evidence_intact": "每日摘要核对无误",
        "evidence_changed": "数据在摘要后被改动",
        "evidence_not_checked": "未核对每日摘要",
        "interval": "不确定区间",
        "verdict": "结论",
        "reasons": "依据",
        "device": "设备",
        "profile": "型号配置",
        "quantity": "计量项",
        "valid": "有效天数",
        "gaps": "中断",
        "spikes": "异常日",
        "stuck": "卡表",
        "resets": "回零",
        "none": "无",
        "period": "评估期",
        "rain_mm": "降雨（毫米）",
        "reuse_m3": "回用（立方米）",
        "verified": "已核实",
        "partly_verified": "部分核实",
        "not_verified": "未核实",
        "insufficient_data": "数据不足",
        "signer": "签名人",
        "fingerprint": "密钥指纹",
        "signed_at": "签名时间",
        "signed_what": "所签内容",
        "verdict_json": "核验结果 JSON",
        "signed_intro": "本报告所载核验结果（JSON）已由以下已登记的密钥签署：",
        "not_signed": "未签名：本报告所载核验结果尚无已登记的签名。",
        "detached": "本 PDF 文件本身的签名为随附的分离式签名文件（.sig），可用 jieshui evidence verify 核对。",
        "lang": "zh-CN",
    },
    "en": {
        "title": "Water-saving community evaluation report",
        "verdicts": "1. Verdicts",
        "coverage": "2. Data coverage",
        "monthly": "3. Monthly measured against claimed",
        "rain": "4. Rainfall and rainwater reuse",
        "tank": "5. Tank storage",
        "wash": "6. Litres per car wash",
        "editlog": "7. Edit log",
        "provenance": "8. Provenance",
        "signature": "9. Signature",
        "claim": "claim",
        "claimed": "claimed",
        "measured": "measured",
        "basis": "of which: metered {measured}, estimated (edit log) {estimated}, verified {verified} {unit}",
        "evidence_intact": "daily digests match",
        "evidence_changed": "data changed after digested",
        "evidence_not_checked": "daily digests not checked",
        "interval": "uncertainty interval",
        "verdict": "verdict",
        "reasons": "reasons",
        "device": "device",
        "profile": "profile",
        "quantity": "quantity",
        "valid": "valid days",
        "gaps": "gaps",
        "spikes": "spike days",
        "stuck": "stuck runs",
        "resets": "resets",
        "none": "none",
        "period": "period",
        "rain_mm": "rain (mm)",
        "reuse_m3": "reuse (m3)",
        "verified": "verified",
        "partly_verified": "partly verified",
        "not_verified": "not verified",
        "insufficient_data": "insufficient data",
        "signer": "signer",
        "fingerprint": "key fingerprint",
        "signed_at": "signed at",
        "signed_what": "what was signed",
        "verdict_json": "verdict JSON",
        "signed_intro": "The verdict this report presents (its JSON) is signed with these registered keys:",
        "not_signed": "not signed: the verdict this report presents has no recorded signature.",
        "detached": "A signature of this PDF file itself is a detached file (.sig) that goes with it: "
        "check it with jieshui evidence verify.",
        "lang": "en",
    },
}
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class ShownSignature:
    """A signature the report lists: of the verdict it presents, checked against a registered key."""

    signer: str
    fingerprint: str  # sha256 hex of the raw public key (the report shows its first 16 digits)
    signed_at: dt.datetime  # aware
    sha256: str  # of the verdict JSON signed


COLORS = {
    "verified": "#2e7d32",
    "partly_verified": "#f9a825",
    "not_verified": "#c62828",
    "insufficient_data": "#757575",
}


def _bars(values: list[float], width: int = 640, height: int = 160, color: str = "#1565c0",
          overlay: list[float] | None = None, labels: list[str] | None = None) -> str:  # fmt: skip
    """A bar chart (and an optional line overlay, e.g. the claim) as inline SVG."""
    top = max([*values, *(overlay or []), 1e-9])
    n = max(len(values), 1)
    w = width / n
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height + 20}" width="{width}" height="{height + 20}" '
             'xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    for i, v in enumerate(values):
        h = height * v / top
        parts.append(
            f'<rect x="{i * w + 1:.1f}" y="{height - h:.1f}" width="{max(w - 2, 0.5):.1f}" height="{h:.1f}" fill="{color}"/>'
        )
        if labels:
            parts.append(
                f'<text x="{i * w + w / 2:.1f}" y="{height + 14}" font-size="10" text-anchor="middle">{escape(labels[i])}</text>'
            )
    if overlay:
        points = " ".join(
            f"{i * w + w / 2:.1f},{height - height * v / top:.1f}" for i, v in enumerate(overlay)
        )
        parts.append(f'<polyline points="{points}" fill="none" stroke="#c62828" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _heatmap(rows: dict[str, list[int]], width: int = 730) -> str:
    """Daily coverage per device: one row per device, one cell per day, darker = more complete."""
    cell = width / 366
    height = 14 * len(rows) + 4
    parts = [f'<svg class="chart" viewBox="0 0 {width + 120} {height}" width="{width + 120}" height="{height}" '
             'xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    for r, (device, days) in enumerate(rows.items()):
        y = 2 + r * 14
        parts.append(f'<text x="0" y="{y + 10}" font-size="10">{escape(device)}</text>')
        for d, pct in enumerate(days):
            shade = 255 - int(2.2 * pct)
            fill = f"rgb({shade},{shade},255)" if pct >= 50 else "rgb(230,80,80)"
            parts.append(
                f'<rect x="{120 + d * cell:.2f}" y="{y}" width="{cell + 0.3:.2f}" height="12" fill="{fill}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _claim_row(claim: ClaimResult, t: dict[str, str], lang: str) -> str:
    interval = f"{claim.interval[0]:.4g} – {claim.interval[1]:.4g}" if claim.interval else "–"
    measured = f"{claim.measured:.4g}" if claim.measured is not None else "–"
    if claim.basis is not None:
        b = claim.basis
        verified = f"{b.verified:.4g}" if b.verified is not None else "–"
        text = t["basis"].format(measured=f"{b.measured:.4g}", estimated=f"{b.estimated:.4g}", verified=verified,
                                 unit=escape(b.unit))  # fmt: skip
        measured += f'<br><small class="basis">{text}; {t["evidence_" + b.evidence]}</small>'
    reasons = "".join(f"<li>{escape(r.zh if lang == 'zh-CN' else r.en)}</li>" for r in claim.reasons)
    return (
        f"<tr><td>{escape(claim.id)}<br><small>{escape(claim.measure)}</small></td>"
        f"<td>{claim.claimed:g} {escape(claim.unit)}</td><td>{measured}</td><td>{interval}</td>"
        f'<td><b style="color:{COLORS[claim.verdict]}">{t[claim.verdict]}</b></td>'
        f"<td><ul>{reasons or '<li>–</li>'}</ul></td></tr>"
    )


def _grouped(hex_digits: str) -> str:
    return " ".join(hex_digits[i : i + 4] for i in range(0, len(hex_digits), 4))


def _signature_section(signatures: Sequence[ShownSignature], t: dict[str, str]) -> str:
    """Who signed the verdict (signer, the key's fingerprint: 16 digits shown, all 64 in the tooltip,
    when in Asia/Shanghai), or that nobody did; and where a signature of the PDF itself is."""
    if signatures:
        rows = "".join(
            f"<tr><td>{escape(s.signer)}</td>"
            f'<td><code title="{escape(s.fingerprint)}">{escape(_grouped(s.fingerprint[:16]))}</code></td>'
            f"<td>{s.signed_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S} (UTC+8)</td>"
            f'<td>{t["verdict_json"]}, sha256 <code title="{escape(s.sha256)}">{escape(s.sha256[:16])}</code></td></tr>'
            for s in signatures
        )
        body = (
            f"<p>{t['signed_intro']}</p><table><tr><th>{t['signer']}</th><th>{t['fingerprint']}</th>"
            f"<th>{t['signed_at']}</th><th>{t['signed_what']}</th></tr>{rows}</table>"
        )
    else:
        body = f'<p class="unsigned"><b>{t["not_signed"]}</b></p>'
    return f'<section id="signature"><h2>{t["signature"]}</h2>{body}<p><small>{t["detached"]}</small></p></section>'


def render_html(
    site: Site, result: VerificationResult, lang: str = "zh-CN", signatures: Sequence[ShownSignature] = ()
) -> str:
    """The report as one HTML document; `signatures` are those of the verdict it presents (none: the
    report says it is not signed)."""
    t = LABELS[lang]
    _, community = site.community(result.community)
    name = community.name if lang == "zh-CN" else (community.name_en or community.name)
    charts = result.charts
    months = [f"{m}" for m in range(1, 13)]
    sections: list[str] = []
    rows = "".join(_claim_row(c, t, lang) for c in result.claims)
    sections.append(
        f'<section id="verdicts"><h2>{t["verdicts"]}</h2><table><tr><th>{t["claim"]}</th><th>{t["claimed"]}</th>'
        f"<th>{t['measured']}</th><th>{t['interval']}</th><th>{t['verdict']}</th><th>{t['reasons']}</th></tr>"
        f"{rows}</table></section>"
    )
    sections.append(f'<section id="coverage"><h2>{t["coverage"]}</h2>{_heatmap(charts.coverage)}</section>')
    monthly_parts = []
    for claim in result.claims:
        facility = next(f for f in community.facilities if f.id == claim.facility)
        key = next((k for k in charts.monthly if k.split(".")[0] in {d.id for d in facility.devices}
                    and k.split(".")[1] in ("supply_m3", "volume_m3")), None)  # fmt: skip
        if key is None or claim.unit not in ("m3/day", "m3/year"):
            continue
        per_month = [claim.claimed * 30.44 if claim.unit == "m3/day" else claim.claimed / 12] * 12
        monthly_parts.append(f"<h3>{escape(claim.id)} ({escape(key)})</h3>"
                             + _bars(charts.monthly[key], overlay=per_month, labels=months))  # fmt: skip
    sections.append(
        f'<section id="monthly"><h2>{t["monthly"]}</h2>{"".join(monthly_parts) or t["none"]}</section>'
    )
    rain = next((v for k, v in charts.daily.items() if k.endswith(".rain_mm")), None)
    reuse = next((v for k, v in charts.daily.items() if k.endswith(".supply_m3")), None)
    rain_html = (f'<h3>{t["rain_mm"]}</h3>{_bars(rain, color="#0277bd")}<h3>{t["reuse_m3"]}</h3>{_bars(reuse, color="#2e7d32")}'
                 if rain is not None and reuse is not None else t["none"])  # fmt: skip
    sections.append(f'<section id="rain"><h2>{t["rain"]}</h2>{rain_html}</section>')
    storage = next((v for k, v in charts.daily.items() if k.endswith(".storage_m3")), None)
    tank_html = _bars(storage, color="#5e35b1") if storage is not None else t["none"]
    sections.append(f'<section id="tank"><h2>{t["tank"]}</h2>{tank_html}</section>')
    if charts.wash_histogram is not None:
        edges = charts.wash_histogram["edges"]
        labels = [f"{edges[i]:g}-{edges[i + 1]:g}" for i in range(len(edges) - 1)]
        wash_html = _bars(charts.wash_histogram["counts"], color="#00838f", labels=labels)
    else:
        wash_html = t["none"]
    sections.append(f'<section id="wash"><h2>{t["wash"]}</h2>{wash_html}</section>')
    log_rows = "".join(
        f"<tr><td>{escape(m.device)}</td><td>{escape(m.quantity)}</td><td>{m.valid_day_share:.1%}</td>"
        f"<td>{len(m.gaps)}</td><td>{escape(', '.join(m.spike_days[:10])) or t['none']}</td>"
        f"<td>{escape(', '.join(f'{a}–{b}' for a, b in m.flat_runs)) or t['none']}</td><td>{m.resets}</td></tr>"
        for m in result.meters
    )
    sections.append(
        f'<section id="editlog"><h2>{t["editlog"]}</h2><table><tr><th>{t["device"]}</th><th>{t["quantity"]}</th>'
        f"<th>{t['valid']}</th><th>{t['gaps']}</th><th>{t['spikes']}</th><th>{t['stuck']}</th><th>{t['resets']}</th></tr>"
        f"{log_rows}</table></section>"
    )
    prov_rows = "".join(
        f"<tr><td>{escape(d.id)}</td><td>{escape(find_profile(d.profile).ref)} "
        f"({escape(find_profile(d.profile).vendor)} {escape(find_profile(d.profile).model)})</td>"
        f"<td>{escape(d.connection.protocol)}</td></tr>"
        for _, d in community.devices()
    )
    sections.append(
        f'<section id="provenance"><h2>{t["provenance"]}</h2><p>{t["period"]}: {escape(result.period[0])} – '
        f"{escape(result.period[1])} (Asia/Shanghai)</p><table><tr><th>{t['device']}</th><th>{t['profile']}</th>"
        f"<th>protocol</th></tr>{prov_rows}</table><p><small>{escape(result.schema_)}</small></p></section>"
    )
    sections.append(_signature_section(signatures, t))
    return f"""<!DOCTYPE html>
<html lang="{t["lang"]}"><head><meta charset="utf-8"><title>{t["title"]} – {escape(name)} {result.year}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Noto Sans SC", sans-serif; margin: 2em; color: #212121; }}
h1 {{ font-size: 1.6em; }} h2 {{ border-bottom: 2px solid #1565c0; padding-bottom: .2em; margin-top: 1.6em; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9em; }}
td, th {{ border: 1px solid #bdbdbd; padding: .3em .5em; vertical-align: top; text-align: left; }}
section {{ page-break-inside: avoid; }} svg.chart {{ max-width: 100%; height: auto; }}
#signature code {{ white-space: nowrap; }}
</style></head><body>
<h1>{t["title"]}</h1>
<p class="who"><b>{escape(name)}</b> ({escape(result.community)}), {escape(community.street_town)}, {escape(result.district)} · {result.year}</p>
{"".join(sections)}
</body></html>
"""


def chromium() -> str:
    """The headless browser that prints the PDF (Debian's `chromium`)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise JieshuiError("chromium not found; install it with: apt-get install chromium (make test does)")
    return found


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


#: The document dates Chromium writes (`/CreationDate (D:20261129142752+00'00')`), the only bytes of
#: its PDF that differ between two prints of the same page.
_PDF_DATES = re.compile(rb"/(CreationDate|ModDate) \(D:[0-9]{14}[^)]*\)")


def _pin_dates(pdf: bytes, created: dt.datetime) -> bytes:
    """The PDF with both document dates set to `created` (UTC). Same length, so the cross-reference
    offsets stay right; JieshuiError if Chromium wrote a date of another form."""
    stamp = created.astimezone(dt.UTC).strftime("D:%Y%m%d%H%M%S+00'00'").encode()

    def pinned(match: re.Match[bytes]) -> bytes:
        new = b"/" + match.group(1) + b" (" + stamp + b")"
        if len(new) != len(match.group(0)):
            raise JieshuiError(f"unexpected PDF date {match.group(0)!r}: cannot pin it")
        return new

    return _PDF_DATES.sub(pinned, pdf)


def render_pdf(html: str, pdf_path: Path, created: dt.datetime | None = None) -> None:
    """Print the HTML to a PDF with headless Chromium (offline: the page has no external resources).

    With `created` (the API gives the verification run's time), the PDF's dates are that time, so the
    same page prints to the same bytes every time: a signature of a report the API served can be
    checked against the report it serves again."""
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        result = subprocess.run(  # noqa: S603 (our own page, a fixed browser)
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", "--no-pdf-header-footer",
             f"--print-to-pdf={pdf_path.resolve()}", page.as_uri()],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    if result.returncode != 0 or not pdf_path.exists():
        raise JieshuiError(f"chromium could not print {pdf_path}: {result.stderr.strip()[-500:]}")
    if created is not None:
        pdf_path.write_bytes(_pin_dates(pdf_path.read_bytes(), created))
