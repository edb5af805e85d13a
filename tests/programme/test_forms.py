"""The programme's forms (附件1, 附件2) as XLSX and CSV: what round-trips, and every refusal, to the message."""

from __future__ import annotations

import codecs
import io
import random
import unicodedata
from collections.abc import Sequence
from typing import Literal

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from programme.forms import (
    COLUMNS,
    FormError,
    FormKind,
    FormLimits,
    FormProblem,
    FormRow,
    form_title,
    read_form,
    write_form,
)

APP = FormKind.APPLICATION
PILOT = FormKind.CAR_WASH_PILOT
DISTRICT = "长宁区"

# The notice's 附件2 as printed: title (district left blank), header, ten numbered rows, notes.
NOTICE_TITLE = "区建设 2020 年度节水型小区申报表"
NOTICE_HEADER = ["序号", "街道/镇", "小区名称", "申报示范小区在此栏打“√”", "居委", "联系人", "电话", "邮编", "地址", "户数", "人口"]  # fmt: skip
NOTICE_NOTES = [
    ["注：1、请于 2020 年 10 月 18 日前，将每个区申报表（初表）发送至邮箱 13916874467@163.com ，"],
    ["联系电话：沈艺玮 62059589；18918230608。"],
    ["2、每个区申报不超过 8 个小区，其中节约用水标杆（示范）小区不超过 2 个（请严格审查后上报）。"],
]
# The notice's 附件1.
PILOT_TITLE = "开展微水洗车业务小区建议名单"
PILOT_HEADER = ["序号", "街道/镇", "小区名称", "居委", "联系人", "电话", "邮编", "地址"]
PILOT_NOTE = ["备注：每个区推荐 1-2 家小区作为微水洗车示范点。"]

APP_HEADER = list(COLUMNS[APP])

Fmt = Literal["xlsx", "csv"]
FORMATS: tuple[Fmt, ...] = ("xlsx", "csv")


def app_cells(
    seq: object,
    name: str,
    *,
    benchmark: object = None,
    street: object = "新泾镇",
    phone: object = "021-62681234",
    postcode: object = "200335",
    households: object = 1460,
    population: object = 3650,
) -> list[object]:
    """One application row as a spreadsheet holds it (valid unless told otherwise)."""
    return [seq, street, name, benchmark, f"{name}居委会", "王丽", phone, postcode, "哈密路1880弄", households, population]  # fmt: skip


def pilot_cells(seq: object, name: str) -> list[object]:
    return [seq, "新泾镇", name, f"{name}居委会", "王丽", "13812345678", "200335", "哈密路1880弄"]


def xlsx(rows: Sequence[Sequence[object]], merges: Sequence[str] = ()) -> bytes:
    """A hand-built workbook: `rows` from A1 down, None for an empty cell."""
    workbook = Workbook()
    sheet = workbook.worksheets[0]
    for row in rows:
        sheet.append(list(row))
    for merged in merges:
        sheet.merge_cells(merged)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def csv_bytes(lines: Sequence[str], bom: bool = True) -> bytes:
    return (("\ufeff" if bom else "") + "\r\n".join(lines) + "\r\n").encode("utf-8")


def problems_of(data: bytes, fmt: Fmt, kind: FormKind = APP, district: str = DISTRICT) -> list[FormProblem]:
    with pytest.raises(FormError) as caught:
        read_form(data, fmt, kind, district)
    return caught.value.problems


def codes(problems: Sequence[FormProblem]) -> list[str]:
    return [p.code for p in problems]


def renumbered(rows: Sequence[FormRow]) -> list[FormRow]:
    return [r.model_copy(update={"seq": i}) for i, r in enumerate(rows, start=1)]


XINJING = FormRow(
    seq=5,
    street_town="新泾镇",
    name="新泾六村",
    benchmark=True,
    residents_committee="新泾六村居委会",
    contact="王丽",
    phone="021-62681234",
    postcode="200335",
    address="哈密路1880弄",
    households=1460,
    population=3650,
)
XIANYI = FormRow(
    seq=9,
    street_town="仙霞新村街道",
    name="仙逸小区",
    residents_committee="仙逸居委会",
    contact="李明",
    phone="13812345678",
    postcode="200336",
    address='仙霞路 88 弄, "南区"',
    households=820,
    population=2050,
)


# --- titles and writing -----------------------------------------------------------------------------


def test_titles_follow_the_notice() -> None:
    assert form_title(APP, "长宁区", 2026) == "长宁区建设 2026 年度节水型小区申报表"
    assert form_title(PILOT, "长宁区", 2026) == "长宁区开展微水洗车业务小区建议名单（2026 年度）"
    assert form_title(APP, "长宁", 2026) == "长宁区建设 2026 年度节水型小区申报表"


def test_xlsx_has_the_title_merged_over_the_header_and_typed_cells() -> None:
    data = write_form([XINJING, XIANYI], "xlsx", APP, DISTRICT, 2026)
    sheet = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    assert sheet["A1"].value == "长宁区建设 2026 年度节水型小区申报表"
    assert [str(r) for r in sheet.merged_cells.ranges] == ["A1:K1"]
    assert [c.value for c in sheet[2]] == APP_HEADER
    assert [c.value for c in sheet[3]] == [1, "新泾镇", "新泾六村", "√", "新泾六村居委会", "王丽", "021-62681234", "200335", "哈密路1880弄", 1460, 3650]  # fmt: skip
    assert [c.value for c in sheet[4]][:4] == [2, "仙霞新村街道", "仙逸小区", None]
    assert sheet["H3"].data_type == "s"  # the postcode is text
    assert sheet["G4"].data_type == "s"  # and so is a mobile number
    assert sheet["J3"].data_type == "n"  # households are a number
    assert sheet.max_row == 4  # no notes after the data
    assert sheet.column_dimensions["I"].width > sheet.column_dimensions["A"].width


def test_csv_is_utf8_with_bom_header_then_rows_without_title() -> None:
    data = write_form([XINJING, XIANYI], "csv", APP, DISTRICT, 2026)
    assert data.startswith(codecs.BOM_UTF8)
    assert data.decode("utf-8-sig").split("\r\n") == [
        "序号,街道/镇,小区名称,申报示范小区,居委,联系人,电话,邮编,地址,户数,人口",
        "1,新泾镇,新泾六村,√,新泾六村居委会,王丽,021-62681234,200335,哈密路1880弄,1460,3650",
        '2,仙霞新村街道,仙逸小区,,仙逸居委会,李明,13812345678,200336,"仙霞路 88 弄, ""南区""",820,2050',
        "",
    ]


def test_pilot_list_has_only_its_eight_columns() -> None:
    data = write_form([XINJING], "csv", PILOT, DISTRICT, 2026)
    assert data.decode("utf-8-sig").split("\r\n")[:2] == [
        "序号,街道/镇,小区名称,居委,联系人,电话,邮编,地址",
        "1,新泾镇,新泾六村,新泾六村居委会,王丽,021-62681234,200335,哈密路1880弄",
    ]


def test_csv_cells_that_excel_would_evaluate_are_guarded_and_read_back_exactly() -> None:
    row = XIANYI.model_copy(update={"name": "=HYPERLINK(1)", "phone": "+86 13812345678", "address": "'引号"})
    data = write_form([row], "csv", APP, DISTRICT, 2026)
    assert "'=HYPERLINK(1)" in data.decode("utf-8-sig")
    assert "'+86 13812345678" in data.decode("utf-8-sig")
    assert read_form(data, "csv", APP, DISTRICT) == renumbered([row])


def test_writing_control_characters_is_refused() -> None:
    row = XIANYI.model_copy(update={"address": "仙霞路\x0188弄"})
    with pytest.raises(FormError) as caught:
        write_form([row], "xlsx", APP, DISTRICT, 2026)
    assert codes(caught.value.problems) == ["bad_text"]
    assert caught.value.problems[0].column == "地址"


# --- round trips ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_is_exact_with_seq_renumbered(fmt: Fmt) -> None:
    data = write_form([XINJING, XIANYI], fmt, APP, DISTRICT, 2026)
    assert read_form(data, fmt, APP, DISTRICT) == renumbered([XINJING, XIANYI])


@pytest.mark.parametrize("fmt", FORMATS)
def test_pilot_round_trip_drops_what_the_list_does_not_hold(fmt: Fmt) -> None:
    data = write_form([XINJING, XIANYI], fmt, PILOT, DISTRICT, 2026)
    expected = [
        r.model_copy(update={"benchmark": False, "households": None, "population": None})
        for r in renumbered([XINJING, XIANYI])
    ]
    assert read_form(data, fmt, PILOT, DISTRICT) == expected


def test_csv_reads_with_or_without_bom() -> None:
    lines = [
        ",".join(APP_HEADER),
        "1,新泾镇,新泾六村,√,新泾六村居委会,王丽,021-62681234,200335,哈密路1880弄,1460,3650",
    ]
    with_bom = read_form(csv_bytes(lines), "csv", APP, DISTRICT)
    assert read_form(csv_bytes(lines, bom=False), "csv", APP, DISTRICT) == with_bom
    assert with_bom == [XINJING.model_copy(update={"seq": 1})]


def test_csv_saved_by_chinese_excel_in_gbk_with_semicolons_reads_too() -> None:
    text = (
        ";".join(APP_HEADER)
        + "\r\n1;新泾镇;新泾六村;√;新泾六村居委会;王丽;021-62681234;200335;哈密路1880弄;1460;3650\r\n"
    )
    assert read_form(text.encode("gbk"), "csv", APP, DISTRICT) == [XINJING.model_copy(update={"seq": 1})]


def test_numbers_as_excel_stores_them_are_normalised() -> None:
    # Typed into Excel: the postcode and the mobile become numbers, counts floats, 序号 a float.
    data = xlsx(
        [
            ["长宁区建设 2026 年度节水型小区申报表"],
            APP_HEADER,
            app_cells(
                1.0, "新泾六村", phone=13812345678, postcode=200335, households=1460.0, population=3650.0
            ),
        ]
    )
    assert read_form(data, "xlsx", APP, DISTRICT) == [
        XINJING.model_copy(update={"seq": 1, "benchmark": False, "phone": "13812345678"})
    ]


def test_seq_is_kept_when_a_whole_number_else_the_row_position() -> None:
    data = xlsx([APP_HEADER, app_cells(7, "甲小区"), app_cells("一", "乙小区"), app_cells(None, "丙小区")])
    assert [r.seq for r in read_form(data, "xlsx", APP, DISTRICT)] == [7, 2, 3]


def test_a_street_merged_down_over_several_communities_counts_for_each() -> None:
    data = xlsx(
        [APP_HEADER, app_cells(1, "甲小区", street="新泾镇"), app_cells(2, "乙小区", street=None)],
        merges=["B2:B3"],
    )
    assert [r.street_town for r in read_form(data, "xlsx", APP, DISTRICT)] == ["新泾镇", "新泾镇"]


@pytest.mark.parametrize(
    "header", ["申报示范小区", "申报示范小区（√）", "申报示范小区在此栏打“√”", " 申报示范小区\n（√） "]
)
def test_benchmark_header_variants_are_recognised(header: str) -> None:
    data = xlsx(
        [["序号 ", *APP_HEADER[1:3], header, *APP_HEADER[4:]], app_cells(1, "新泾六村", benchmark="√")]
    )
    assert read_form(data, "xlsx", APP, DISTRICT)[0].benchmark is True


@pytest.mark.parametrize(("mark", "benchmark"), [("√", True), ("✓", True), ("✔", True), ("是", True),
                                                 ("Y", True), ("y", True), ("1", True), (1, True),
                                                 (" √ ", True), (None, False), ("", False)])  # fmt: skip
def test_benchmark_marks(mark: object, benchmark: bool) -> None:
    data = xlsx([APP_HEADER, app_cells(1, "新泾六村", benchmark=mark)])
    assert read_form(data, "xlsx", APP, DISTRICT)[0].benchmark is benchmark


# --- the notice's layout -------------------------------------------------------------------------------


def notice_form(filled: dict[int, list[object]]) -> bytes:
    """附件2 as the notice prints it: 附件 2, the title, the header, rows 1-10 (some filled), the notes."""
    rows: list[Sequence[object]] = [["附件 2"], [NOTICE_TITLE], NOTICE_HEADER]
    rows += [filled.get(n, [n]) for n in range(1, 11)]
    rows += [[], *NOTICE_NOTES]
    return xlsx(rows, merges=["A2:K2"])


def test_notice_layout_reports_exactly_the_bad_phone_and_the_long_postcode() -> None:
    data = notice_form(
        {
            1: app_cells(1, "新泾六村", phone="12345"),
            2: app_cells(2, "仙逸小区", postcode="2003351"),
            3: app_cells(3, "虹桥小区"),
        }
    )
    # 附件 2 is row 1, the title row 2, the header row 3: numbered row 1 is sheet row 4.
    assert problems_of(data, "xlsx") == [
        FormProblem(
            row=4,
            column="电话",
            cell="G4",
            code="bad_phone",
            zh="第4行「电话」：“12345”不是有效的电话号码（座机如 021-62681234 或 62681234，或11位手机号）",
            en="row 4, 电话 (phone): '12345' is not a valid phone number (landline like 021-62681234 or 62681234, or an 11-digit mobile)",
        ),
        FormProblem(
            row=5,
            column="邮编",
            cell="H5",
            code="bad_postcode",
            zh="第5行「邮编」：“2003351”不是6位数字的邮政编码",
            en="row 5, 邮编 (postcode): '2003351' is not a 6-digit postcode",
        ),
    ]


def test_notice_layout_with_valid_rows_reads_them_and_stops_at_the_notes() -> None:
    data = notice_form({1: app_cells(1, "新泾六村", benchmark="√"), 2: app_cells(2, "仙逸小区")})
    assert [(r.seq, r.name, r.benchmark) for r in read_form(data, "xlsx", APP, DISTRICT)] == [
        (1, "新泾六村", True),
        (2, "仙逸小区", False),
    ]


def test_blank_notice_template_is_an_empty_form() -> None:
    assert problems_of(notice_form({}), "xlsx") == [
        FormProblem(
            row=None,
            column=None,
            cell=None,
            code="empty_form",
            zh="申报表中没有填写任何小区",
            en="the form lists no community",
        )
    ]


def test_blank_pilot_template_has_too_few_pilots() -> None:
    data = xlsx([["附件 1"], [PILOT_TITLE], PILOT_HEADER, [1], [2], [3], [4], [5], [], PILOT_NOTE])
    assert codes(problems_of(data, "xlsx", PILOT)) == ["too_few_pilots"]


def test_pilot_list_in_the_notice_layout_reads() -> None:
    data = xlsx(
        [
            ["附件 1"],
            [PILOT_TITLE],
            PILOT_HEADER,
            pilot_cells(1, "新泾六村"),
            [2],
            [3],
            [4],
            [5],
            [],
            PILOT_NOTE,
        ]
    )
    assert [r.name for r in read_form(data, "xlsx", PILOT, DISTRICT)] == ["新泾六村"]


# --- each refusal ---------------------------------------------------------------------------------------


def test_nine_applications_are_too_many() -> None:
    data = xlsx([APP_HEADER, *(app_cells(n, f"第{n}小区") for n in range(1, 10))])
    assert problems_of(data, "xlsx") == [
        FormProblem(
            row=None,
            column=None,
            cell=None,
            code="too_many_applications",
            zh="申报了 9 个小区，每区不超过 8 个",
            en="9 communities apply; a district may apply for at most 8",
        )
    ]


def test_three_benchmarks_are_too_many_and_all_three_are_named() -> None:
    data = xlsx(
        [APP_HEADER, *(app_cells(n, name, benchmark="√") for n, name in enumerate(["甲", "乙", "丙"], 1))]
    )
    assert problems_of(data, "xlsx") == [
        FormProblem(
            row=None,
            column="申报示范小区",
            cell=None,
            code="too_many_benchmarks",
            zh="申报示范小区 3 个（甲、乙、丙），每区不超过 2 个",
            en="3 benchmark applications (甲, 乙, 丙); a district may apply for at most 2",
        )
    ]


def test_limits_are_configurable() -> None:
    data = xlsx(
        [APP_HEADER, *(app_cells(n, name, benchmark="√") for n, name in enumerate(["甲", "乙", "丙"], 1))]
    )
    assert len(read_form(data, "xlsx", APP, DISTRICT, FormLimits(max_benchmarks=3))) == 3


def test_implausible_household_size_names_both_numbers_and_the_ratio() -> None:
    data = xlsx([APP_HEADER, app_cells(1, "新泾六村", households=100, population=900)])
    assert problems_of(data, "xlsx") == [
        FormProblem(
            row=2,
            column="人口",
            cell="K2",
            code="implausible_household_size",
            zh="第2行「人口」：900 人 / 100 户 = 每户 9.0 人，不在 1–6 人之间（户数和人口是否填反或填错？）",
            en="row 2, 人口 (population): 900 people in 100 households is 9.0 per household, outside 1-6 (swapped or mistyped?)",
        )
    ]


def test_missing_required_field() -> None:
    data = xlsx([APP_HEADER, app_cells(1, "新泾六村", street="  ")])
    assert problems_of(data, "xlsx") == [
        FormProblem(
            row=2,
            column="街道/镇",
            cell="B2",
            code="missing_field",
            zh="第2行「街道/镇」：未填写（必填）",
            en="row 2, 街道/镇 (street/town): is empty (required)",
        )
    ]


@pytest.mark.parametrize(("households", "code"), [("约1500", "bad_number"), (12.5, "bad_number"),
                                                    (0, "not_positive"), ("-3", "not_positive")])  # fmt: skip
def test_households_must_be_a_positive_whole_number(households: object, code: str) -> None:
    data = xlsx([APP_HEADER, app_cells(1, "新泾六村", households=households)])
    problems = problems_of(data, "xlsx")
    assert [(p.code, p.column, p.cell) for p in problems] == [(code, "户数", "J2")]


def test_non_numeric_households_message() -> None:
    lines = [
        ",".join(APP_HEADER),
        "1,新泾镇,新泾六村,,居委会,王丽,021-62681234,200335,哈密路1880弄,约1500,3650",
    ]
    assert problems_of(csv_bytes(lines), "csv") == [
        FormProblem(
            row=2,
            column="户数",
            cell=None,  # CSV cells have no reference
            code="bad_number",
            zh="第2行「户数」：“约1500”不是整数",
            en="row 2, 户数 (households): '约1500' is not a whole number",
        )
    ]


def test_a_bad_benchmark_mark_is_named() -> None:
    data = xlsx([APP_HEADER, app_cells(1, "新泾六村", benchmark="否")])
    assert [(p.code, p.cell) for p in problems_of(data, "xlsx")] == [("bad_benchmark_mark", "D2")]


def test_duplicate_names_name_both_rows() -> None:
    data = xlsx([APP_HEADER, app_cells(1, "新泾六村"), app_cells(2, "仙逸小区"), app_cells(3, " 新泾六村")])
    assert problems_of(data, "xlsx") == [
        FormProblem(
            row=4,
            column="小区名称",
            cell="C4",
            code="duplicate_name",
            zh="第4行「小区名称」：“新泾六村”与第2行重复",
            en="row 4, 小区名称 (community name): '新泾六村' is also on row 2",
        )
    ]


def test_a_title_naming_another_district_is_refused() -> None:
    data = xlsx([["徐汇区建设 2020 年度节水型小区申报表"], APP_HEADER, app_cells(1, "新泾六村")])
    assert problems_of(data, "xlsx") == [
        FormProblem(
            row=1,
            column=None,
            cell="A1",
            code="wrong_district",
            zh="标题“徐汇区建设 2020 年度节水型小区申报表”是徐汇区的表，不是长宁区的",
            en="the title '徐汇区建设 2020 年度节水型小区申报表' is for 徐汇区, not 长宁区",
        )
    ]


@pytest.mark.parametrize(
    "title",
    [
        "长宁区建设 2020 年度节水型小区申报表",
        "上海市长宁区建设 2020 年度节水型小区申报表",
        NOTICE_TITLE,
        "附件 2",
    ],
)
def test_titles_naming_this_district_or_none_are_accepted(title: str) -> None:
    data = xlsx([[title], APP_HEADER, app_cells(1, "新泾六村")])
    assert len(read_form(data, "xlsx", APP, "长宁区")) == 1
    assert len(read_form(data, "xlsx", APP, "长宁")) == 1


def test_a_pilot_list_is_not_an_application_form() -> None:
    data = write_form([XINJING], "xlsx", PILOT, DISTRICT, 2026)
    assert codes(problems_of(data, "xlsx", APP)) == ["wrong_form", "missing_column", "missing_column"]
    assert [p.column for p in problems_of(data, "xlsx", APP)][1:] == ["户数", "人口"]


def test_missing_columns_are_named_on_the_header_row() -> None:
    header = [h for h in APP_HEADER if h not in ("电话", "人口")]
    problems = problems_of(xlsx([["长宁区建设 2026 年度节水型小区申报表"], header]), "xlsx")
    assert [(p.code, p.row, p.column) for p in problems] == [
        ("missing_column", 2, "电话"),
        ("missing_column", 2, "人口"),
        ("empty_form", None, None),
    ]


@pytest.mark.parametrize(("count", "code"), [(0, "too_few_pilots"), (3, "too_many_pilots")])
def test_pilots_must_be_one_or_two(count: int, code: str) -> None:
    data = xlsx([PILOT_HEADER, *(pilot_cells(n, f"第{n}小区") for n in range(1, count + 1))])
    (problem,) = problems_of(data, "xlsx", PILOT)
    assert (problem.code, problem.row, problem.column) == (code, None, None)
    assert problem.zh == f"微水洗车试点小区填了 {count} 个，每区应推荐 1–2 个"
    assert problem.en == f"{count} car-wash pilot communities listed; each district recommends 1-2"


def test_every_problem_is_reported_at_once_and_listed_in_the_message() -> None:
    data = xlsx(
        [
            ["徐汇区建设 2020 年度节水型小区申报表"],
            APP_HEADER,
            app_cells(1, "新泾六村", phone="12345", postcode=None),
            app_cells(2, "新泾六村", households="many"),
        ]
    )
    with pytest.raises(FormError) as caught:
        read_form(data, "xlsx", APP, DISTRICT)
    assert codes(caught.value.problems) == ["wrong_district", "bad_phone", "missing_field", "bad_number", "duplicate_name"]  # fmt: skip
    assert str(caught.value).splitlines() == [p.en for p in caught.value.problems]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "data",
    [b"not a spreadsheet", b"", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), b"\xff\xfe\x00\xd8"],
    ids=["text", "empty", "old-xls", "broken-utf16"],
)
def test_a_garbage_file_is_a_bad_file(fmt: Fmt, data: bytes) -> None:
    assert codes(problems_of(data, fmt)) == ["bad_file"]


def test_an_xlsx_uploaded_as_csv_is_a_bad_file_that_says_so() -> None:
    (problem,) = problems_of(write_form([XINJING], "xlsx", APP, DISTRICT, 2026), "csv")
    assert problem.code == "bad_file"
    assert problem.en == "this is an Excel workbook, not a CSV file; upload it as XLSX"


def test_damaged_workbooks_only_ever_raise_form_errors() -> None:
    # Corrupt a real export at random (seeded): each result is the rows or a FormError, nothing else.
    good = write_form([XINJING, XIANYI], "xlsx", APP, DISTRICT, 2026)
    rng = random.Random(610)
    outcomes: list[str] = []
    for _ in range(200):
        damaged = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        if rng.random() < 0.2:
            damaged = damaged[: rng.randrange(len(damaged))]
        try:
            read_form(bytes(damaged), "xlsx", APP, DISTRICT)
            outcomes.append("rows")
        except FormError as exc:
            outcomes.extend(p.code for p in exc.problems)
    assert outcomes
    assert "bad_file" in outcomes
    assert all(outcomes)


# --- any valid form round-trips ---------------------------------------------------------------------


def _name_key(name: str) -> str:
    """How read_form compares 小区名称 for duplicates."""
    return "".join(unicodedata.normalize("NFKC", name).split())


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n)


_CHARS = st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # CJK unified ideographs
    st.sampled_from(list("abcXYZ019 ,;\"'=+-@()（）/#\n")),  # separators, quotes, formula starts
)
_TEXT = st.text(_CHARS, min_size=1, max_size=12).filter(lambda s: s == s.strip() and s != "")
_MOBILE = _digits(10).map(lambda d: "1" + d)
_LANDLINE = st.builds(
    lambda area, sep, number: f"0{area}{sep}{number}",
    st.one_of(_digits(2), _digits(3)),
    st.sampled_from(["", "-"]),
    st.one_of(_digits(7), _digits(8)),
)
_PHONE = st.builds(lambda prefix, number: prefix + number, st.sampled_from(["", "+86", "86", "+86-", "86 "]), st.one_of(_MOBILE, _LANDLINE))  # fmt: skip


@st.composite
def _application_row(draw: st.DrawFn) -> FormRow:
    households = draw(st.integers(1, 5000))
    return FormRow(
        seq=draw(st.integers(-5, 99)),  # whatever it was, writing renumbers it
        street_town=draw(_TEXT),
        name=draw(_TEXT),
        benchmark=draw(st.booleans()),
        residents_committee=draw(_TEXT),
        contact=draw(_TEXT),
        phone=draw(_PHONE),
        postcode=draw(_digits(6)),
        address=draw(_TEXT),
        households=households,
        population=draw(st.integers(households, 6 * households)),  # 1-6 people per household
    )


def _at_most_two_benchmarks(rows: list[FormRow]) -> list[FormRow]:
    marked = [i for i, r in enumerate(rows) if r.benchmark][2:]
    return [r.model_copy(update={"benchmark": False}) if i in marked else r for i, r in enumerate(rows)]


@settings(deadline=None, max_examples=60)
@given(
    rows=st.lists(_application_row(), min_size=1, max_size=8, unique_by=lambda r: _name_key(r.name)).map(
        _at_most_two_benchmarks
    )
)
def test_any_valid_application_round_trips_through_both_formats(rows: list[FormRow]) -> None:
    for fmt in FORMATS:
        data = write_form(rows, fmt, APP, "浦东新区", 2026)
        assert read_form(data, fmt, APP, "浦东新区") == renumbered(rows)


@settings(deadline=None, max_examples=30)
@given(rows=st.lists(_application_row(), min_size=1, max_size=2, unique_by=lambda r: _name_key(r.name)))
def test_any_valid_pilot_list_round_trips_through_both_formats(rows: list[FormRow]) -> None:
    pilots = [r.model_copy(update={"benchmark": False, "households": None, "population": None}) for r in rows]
    for fmt in FORMATS:
        data = write_form(pilots, fmt, PILOT, DISTRICT, 2026)
        assert read_form(data, fmt, PILOT, DISTRICT) == renumbered(pilots)


@pytest.mark.parametrize(
    ("phone", "ok"),
    [("62059589", True), ("021-62059589", True), ("18918230608", True), ("+86 18918230608", True),
     ("12345", False), ("1891823060", False)],
)  # fmt: skip
def test_phones_as_the_notice_writes_them(phone: str, ok: bool) -> None:
    """The notice's own contact line gives a local number without the area code (沈艺玮 62059589)."""
    data = xlsx([list(COLUMNS[APP]), app_cells(1, "新泾六村", phone=phone)])
    if ok:
        assert read_form(data, "xlsx", APP, DISTRICT)[0].phone == phone
    else:
        with pytest.raises(FormError) as caught:
            read_form(data, "xlsx", APP, DISTRICT)
        assert [p.code for p in caught.value.problems] == ["bad_phone"]


def test_values_the_database_cannot_hold_are_refused_on_their_cell() -> None:
    """Found by schemathesis: each of these was accepted, then a 500 when stored (PostgreSQL)."""
    long_name = "长" * 201
    rows = [
        list(COLUMNS[APP]),
        app_cells(1, long_name),
        app_cells(2, "哈密新苑", households=2**31, population=2**31 + 5),
        app_cells(3, "剑河家苑", households="9" * 5000),
    ]
    with pytest.raises(FormError) as caught:
        read_form(xlsx(rows), "xlsx", APP, DISTRICT)
    got = [(p.cell, p.code) for p in caught.value.problems]
    # (the 居委 column of row 2 is the name plus 居委会: too long as well)
    assert got == [
        ("C2", "too_long"),
        ("E2", "too_long"),
        ("J3", "too_large"),
        ("K3", "too_large"),
        ("J4", "bad_number"),
    ]
    assert caught.value.problems[0].en.endswith("is 201 characters long, longer than 200")


def test_a_seq_too_large_to_store_gives_way_to_the_row_position() -> None:
    data = xlsx([list(COLUMNS[APP]), app_cells(2**40, "新泾六村")])
    assert read_form(data, "xlsx", APP, DISTRICT)[0].seq == 1
