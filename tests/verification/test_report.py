"""The evaluation report: self-contained HTML in zh-CN and en that headless Chromium draws with its
charts and Chinese text, a PDF with the same sections, and every inventory string escaped."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jieshui.inventory import Site
from tests.verification.conftest import YEAR, SimulatedYear
from verification.engine import verify
from verification.report import CHROMIUM_FLAGS, LABELS, chromium, render_html, render_pdf

SECTIONS = ("verdicts", "coverage", "monthly", "rain", "tank", "wash", "editlog", "provenance")


@pytest.fixture(scope="module")
def report(honest_year: SimulatedYear) -> tuple[Site, object]:
    return honest_year.site, verify(honest_year.store, honest_year.site, "xinjing-6", YEAR)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_html_has_every_section_and_no_external_resource(report: tuple[Site, object], lang: str) -> None:
    site, result = report
    html = render_html(site, result, lang)  # type: ignore[arg-type]
    for section in SECTIONS:
        assert f'<section id="{section}"><h2>{LABELS[lang][section]}</h2>' in html
    assert html.count("<svg") >= 6
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert LABELS[lang]["verified"] in html


def test_inventory_strings_are_escaped(report: tuple[Site, object]) -> None:
    site, result = report
    raw = site.model_dump()
    raw["districts"][0]["communities"][0]["name"] = "<script>alert('x')</script>"
    evil = Site.model_validate(raw)
    html = render_html(evil, result)  # type: ignore[arg-type]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_chromium_draws_the_charts_and_the_chinese_text(report: tuple[Site, object], tmp_path: Path) -> None:
    site, result = report
    page = tmp_path / "report.html"
    page.write_text(render_html(site, result, "zh-CN"), encoding="utf-8")  # type: ignore[arg-type]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2600",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2600)
    pixels = np.asarray(image).reshape(-1, 3)

    def count(rgb: tuple[int, int, int]) -> int:
        return int((pixels == np.array(rgb)).all(axis=1).sum())

    # the bars of the monthly chart (#1565c0) and of the wash histogram (#00838f) are drawn
    assert count((0x15, 0x65, 0xC0)) > 2000
    assert count((0x00, 0x83, 0x8F)) > 500
    # the Chinese title is drawn with a CJK font: dark glyph pixels in its box, and fontconfig
    # resolves the page's font to Noto CJK rather than a fallback that would draw empty boxes
    title = np.asarray(image.crop((20, 20, 300, 70))).astype(int)
    assert int((title.sum(axis=2) < 200).sum()) > 300
    font = subprocess.run(["fc-match", "Noto Sans CJK SC"], capture_output=True, text=True, check=True).stdout
    assert "CJK" in font


def test_pdf_has_the_same_sections(report: tuple[Site, object], tmp_path: Path) -> None:
    site, result = report
    pdf = tmp_path / "report.pdf"
    render_pdf(render_html(site, result, "zh-CN"), pdf)  # type: ignore[arg-type]
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for section in SECTIONS:
        assert LABELS["zh-CN"][section] in text
    assert "新泾六村" in text
