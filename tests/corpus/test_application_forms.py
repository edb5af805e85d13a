"""Bad application forms (附件2) and car-wash pilot lists (附件1), as programme/forms.py reads them (CSV and
XLSX): each is refused whole with FormError, every problem with its row, column and cell (XLSX), its
code, and its message in Chinese and English. Then the import through the API: the problems come back
as 422 `invalid_form` details in the caller's language; an upload over MAX_FORM_BYTES is 413.

The forms have no date column: the date rule is the application deadline (`application_closed`,
tests/corpus/test_api_requests.py). tests/programme/test_forms.py has the first cases.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any, Literal

import pytest
from openpyxl import Workbook

from api.routes.programme import MAX_FORM_BYTES
from programme.forms import FormError, FormKind, read_form
from tests.api.conftest import Api
from tests.corpus.test_api_requests import error_of, send

Fmt = Literal["xlsx", "csv"]
APP, PILOT = FormKind.APPLICATION, FormKind.CAR_WASH_PILOT
DISTRICT = "长宁区"
HEADER = "序号,街道/镇,小区名称,申报示范小区,居委,联系人,电话,邮编,地址,户数,人口"
PHEADER = "序号,街道/镇,小区名称,居委,联系人,电话,邮编,地址"
XH: list[Any] = HEADER.split(",")
GOODX: list[Any] = [1, "新泾镇", "新泾六村", None, "新泾六村居委会", "王丽", "021-62681234", "200335", "哈密路1880弄", 1460, 3650]  # fmt: skip


def row(
    seq: int = 1,
    name: str = "新泾六村",
    mark: str = "",
    street: str = "新泾镇",
    committee: str = "新泾六村居委会",
    contact: str = "王丽",
    phone: str = "021-62681234",
    postcode: str = "200335",
    address: str = "哈密路1880弄",
    households: str = "1460",
    population: str = "3650",
) -> str:
    """One CSV line of the application form, valid unless told otherwise."""
    cells = [seq, street, name, mark, committee, contact, phone, postcode, address, households, population]
    return ",".join(str(c) for c in cells)


def prow(seq: int = 1, name: str = "新泾六村") -> str:
    """One CSV line of the pilot list."""
    return f"{seq},新泾镇,{name},{name}居委会,王丽,13812345678,200335,哈密路1880弄"


def csv(*lines: str, header: str = HEADER) -> bytes:
    """A CSV file as Excel saves it as "CSV UTF-8": BOM, header, rows."""
    return ("\ufeff" + "\r\n".join([header, *lines]) + "\r\n").encode()


def xlsx(rows: list[list[Any]]) -> bytes:
    """A workbook with `rows` from A1 down."""
    workbook = Workbook()
    sheet = workbook.worksheets[0]
    for cells in rows:
        sheet.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def bomb() -> bytes:
    """A small zip that declares 65 MB unzipped (zeros deflate to almost nothing)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/big.xml", b"\0" * (65 * 1024 * 1024))
    return buffer.getvalue()


#: (case id, the uploaded bytes, the format it is read as, which form)
CASES: list[tuple[str, bytes, Fmt, FormKind]] = [
 ("missing-column-phone", csv(row().replace(",021-62681234", ""), header=HEADER.replace(",电话", "")), "csv", APP),
 ("missing-two-columns", csv("1,新泾镇,新泾六村,,居委会,王丽,021-62681234,200335,哈密路1880弄", header="序号,街道/镇,小区名称,申报示范小区,居委,联系人,电话,邮编,地址"), "csv", APP),
 ("duplicate-column", csv(row() + ",13812345678", header=HEADER + ",电话"), "csv", APP),
 ("no-header-row", b"name,phone\r\nfoo,1\r\n", "csv", APP),
 ("header-below-row-10", ("\r\n" * 10 + HEADER + "\r\n" + row() + "\r\n").encode(), "csv", APP),
 ("households-in-words", csv(row(households="一千四百六十")), "csv", APP),
 ("households-fraction", csv(row(households="1460.5")), "csv", APP),
 ("households-zero", csv(row(households="0")), "csv", APP),
 ("households-negative", csv(row(households="-5")), "csv", APP),
 ("households-over-int32", csv(row(households=str(2**31), population=str(2**31 + 5))), "csv", APP),
 ("population-empty", csv(row(population="")), "csv", APP),
 ("ten-per-household", csv(row(population="14600")), "csv", APP),
 ("phone-letters", csv(row(phone="021-6268ABCD")), "csv", APP),
 ("phone-six-digits", csv(row(phone="626812")), "csv", APP),
 ("mobile-twelve-digits", csv(row(phone="138123456789")), "csv", APP),
 ("phone-number-cell-xlsx", xlsx([XH, [*GOODX[:6], 2162681234, *GOODX[7:]]]), "xlsx", APP),
 ("postcode-five-digits", csv(row(postcode="20033")), "csv", APP),
 ("postcode-letter-o", csv(row(postcode="20O335")), "csv", APP),
 ("benchmark-mark-x", csv(row(mark="x")), "csv", APP),
 ("name-empty", csv(row(name="")), "csv", APP),
 ("address-301-chars", csv(row(address="路" * 301)), "csv", APP),
 ("contact-control-char", csv(row(contact="王\x07丽")), "csv", APP),
 ("duplicate-name-full-width", csv(row(1, "新泾六村"), row(2, "新泾六村 ")), "csv", APP),
 ("duplicate-name-nfkc", csv(row(1, "Ａ小区"), row(2, "A小区")), "csv", APP),
 ("nine-applications", csv(*[row(i, f"小区{i}") for i in range(1, 10)]), "csv", APP),
 ("three-benchmarks", csv(*[row(i, f"小区{i}", mark="√") for i in range(1, 4)]), "csv", APP),
 ("header-only", csv(), "csv", APP),
 ("title-of-another-district", xlsx([["徐汇区建设 2026 年度节水型小区申报表"], XH, GOODX]), "xlsx", APP),
 ("pilot-title-on-application", xlsx([["开展微水洗车业务小区建议名单"], XH, GOODX]), "xlsx", APP),
 ("application-title-on-pilot-list", xlsx([["长宁区建设 2026 年度节水型小区申报表"], PHEADER.split(","), [1, "新泾镇", "新泾六村", "居委会", "王丽", "13812345678", "200335", "哈密路1880弄"]]), "xlsx", PILOT),
 ("three-pilots", csv(*[prow(i, f"小区{i}") for i in range(1, 4)], header=PHEADER), "csv", PILOT),
 ("no-pilot", csv(header=PHEADER), "csv", PILOT),
 ("pilot-list-without-address", csv(prow().rsplit(",", 1)[0], header=PHEADER.rsplit(",", 1)[0]), "csv", PILOT),
 ("neither-utf8-nor-gb18030", b"\xff\xff\xff\xff", "csv", APP),
 ("nul-in-csv", csv(row(contact="王\x00丽")), "csv", APP),
 ("xlsx-uploaded-as-csv", xlsx([XH, GOODX]), "csv", APP),
 ("csv-uploaded-as-xlsx", csv(row()), "xlsx", APP),
 ("old-xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504, "xlsx", APP),
 ("xlsx-empty-file", b"", "xlsx", APP),
 ("xlsx-truncated", xlsx([XH, GOODX])[:1000], "xlsx", APP),
 ("zip-bomb", bomb(), "xlsx", APP),
 ("csv-field-over-limit", csv(row(address="x" * 200_000)), "csv", APP),
 ("xlsx-households-text", xlsx([XH, [*GOODX[:9], "约1460户", 3650]]), "xlsx", APP),
 ("xlsx-households-bool", xlsx([XH, [*GOODX[:9], True, 3650]]), "xlsx", APP),
]  # fmt: skip


#: case id -> every problem as (row, column, cell, code, zh, en)
EXPECTED: dict[str, list[tuple[int | None, str | None, str | None, str, str, str]]] = {
    'missing-column-phone': [(1, '电话', None, 'missing_column', '第1行表头缺少“电话”列', 'row 1: the header has no column 电话 (phone)')],
    'missing-two-columns': [(1, '户数', None, 'missing_column', '第1行表头缺少“户数”列', 'row 1: the header has no column 户数 (households)'), (1, '人口', None, 'missing_column', '第1行表头缺少“人口”列', 'row 1: the header has no column 人口 (population)')],
    'duplicate-column': [(1, '电话', None, 'duplicate_column', '第1行表头中“电话”出现了两次（第 G 列和第 L 列）', 'row 1: the header has 电话 (phone) twice (columns G and L)')],
    'no-header-row': [(None, None, None, 'bad_file', '前 10 行中找不到含“序号”和“小区名称”的表头行，这不是节水型小区申报表', 'no header row with 序号 and 小区名称 in the first 10 rows: this is not the water-saving community application form (附件2)')],
    'header-below-row-10': [(None, None, None, 'bad_file', '前 10 行中找不到含“序号”和“小区名称”的表头行，这不是节水型小区申报表', 'no header row with 序号 and 小区名称 in the first 10 rows: this is not the water-saving community application form (附件2)')],
    'households-in-words': [(2, '户数', None, 'bad_number', '第2行「户数」：“一千四百六十”不是整数', "row 2, 户数 (households): '一千四百六十' is not a whole number")],
    'households-fraction': [(2, '户数', None, 'bad_number', '第2行「户数」：“1460.5”不是整数', "row 2, 户数 (households): '1460.5' is not a whole number")],
    'households-zero': [(2, '户数', None, 'not_positive', '第2行「户数」：0 应为正整数', 'row 2, 户数 (households): 0 must be a positive whole number')],
    'households-negative': [(2, '户数', None, 'not_positive', '第2行「户数」：-5 应为正整数', 'row 2, 户数 (households): -5 must be a positive whole number')],
    'households-over-int32': [(2, '户数', None, 'too_large', '第2行「户数」：2147483648 过大（最多 2147483647）', 'row 2, 户数 (households): 2147483648 is larger than 2147483647'), (2, '人口', None, 'too_large', '第2行「人口」：2147483653 过大（最多 2147483647）', 'row 2, 人口 (population): 2147483653 is larger than 2147483647')],
    'population-empty': [(2, '人口', None, 'missing_field', '第2行「人口」：未填写（必填）', 'row 2, 人口 (population): is empty (required)')],
    'ten-per-household': [(2, '人口', None, 'implausible_household_size', '第2行「人口」：14600 人 / 1460 户 = 每户 10.0 人，不在 1–6 人之间（户数和人口是否填反或填错？）', 'row 2, 人口 (population): 14600 people in 1460 households is 10.0 per household, outside 1-6 (swapped or mistyped?)')],
    'phone-letters': [(2, '电话', None, 'bad_phone', '第2行「电话」：“021-6268ABCD”不是有效的电话号码（座机如 021-62681234 或 62681234，或11位手机号）', "row 2, 电话 (phone): '021-6268ABCD' is not a valid phone number (landline like 021-62681234 or 62681234, or an 11-digit mobile)")],
    'phone-six-digits': [(2, '电话', None, 'bad_phone', '第2行「电话」：“626812”不是有效的电话号码（座机如 021-62681234 或 62681234，或11位手机号）', "row 2, 电话 (phone): '626812' is not a valid phone number (landline like 021-62681234 or 62681234, or an 11-digit mobile)")],
    'mobile-twelve-digits': [(2, '电话', None, 'bad_phone', '第2行「电话」：“138123456789”不是有效的电话号码（座机如 021-62681234 或 62681234，或11位手机号）', "row 2, 电话 (phone): '138123456789' is not a valid phone number (landline like 021-62681234 or 62681234, or an 11-digit mobile)")],
    'phone-number-cell-xlsx': [(2, '电话', 'G2', 'bad_phone', '第2行「电话」：“2162681234”不是有效的电话号码（座机如 021-62681234 或 62681234，或11位手机号）；该格是数字，座机开头的 0 可能被 Excel 去掉了，请把该列设为文本', "row 2, 电话 (phone): '2162681234' is not a valid phone number (landline like 021-62681234 or 62681234, or an 11-digit mobile); the cell is a number, so Excel may have dropped a landline's leading 0: format the column as text")],
    'postcode-five-digits': [(2, '邮编', None, 'bad_postcode', '第2行「邮编」：“20033”不是6位数字的邮政编码', "row 2, 邮编 (postcode): '20033' is not a 6-digit postcode")],
    'postcode-letter-o': [(2, '邮编', None, 'bad_postcode', '第2行「邮编」：“20O335”不是6位数字的邮政编码', "row 2, 邮编 (postcode): '20O335' is not a 6-digit postcode")],
    'benchmark-mark-x': [(2, '申报示范小区', None, 'bad_benchmark_mark', '第2行「申报示范小区」：“x”不是有效标记（申报示范小区请填“√”，否则留空）', "row 2, 申报示范小区 (benchmark application): 'x' is not a mark (put √ to apply as a benchmark community, else leave it empty)")],
    'name-empty': [(2, '小区名称', None, 'missing_field', '第2行「小区名称」：未填写（必填）', 'row 2, 小区名称 (community name): is empty (required)')],
    'address-301-chars': [(2, '地址', None, 'too_long', '第2行「地址」：有 301 个字符，最多 300 个', 'row 2, 地址 (address): is 301 characters long, longer than 300')],
    'contact-control-char': [(2, '联系人', None, 'bad_text', '第2行「联系人」：含有不可见的控制字符', 'row 2, 联系人 (contact): contains control characters')],
    'duplicate-name-full-width': [(3, '小区名称', None, 'duplicate_name', '第3行「小区名称」：“新泾六村”与第2行重复', "row 3, 小区名称 (community name): '新泾六村' is also on row 2")],
    'duplicate-name-nfkc': [(3, '小区名称', None, 'duplicate_name', '第3行「小区名称」：“A小区”与第2行重复', "row 3, 小区名称 (community name): 'A小区' is also on row 2")],
    'nine-applications': [(None, None, None, 'too_many_applications', '申报了 9 个小区，每区不超过 8 个', '9 communities apply; a district may apply for at most 8')],
    'three-benchmarks': [(None, '申报示范小区', None, 'too_many_benchmarks', '申报示范小区 3 个（小区1、小区2、小区3），每区不超过 2 个', '3 benchmark applications (小区1, 小区2, 小区3); a district may apply for at most 2')],
    'header-only': [(None, None, None, 'empty_form', '申报表中没有填写任何小区', 'the form lists no community')],
    'title-of-another-district': [(1, None, 'A1', 'wrong_district', '标题“徐汇区建设 2026 年度节水型小区申报表”是徐汇区的表，不是长宁区的', "the title '徐汇区建设 2026 年度节水型小区申报表' is for 徐汇区, not 长宁区")],
    'pilot-title-on-application': [(1, None, 'A1', 'wrong_form', '标题“开展微水洗车业务小区建议名单”不是节水型小区申报表', "the title '开展微水洗车业务小区建议名单' is not that of the water-saving community application form (附件2)")],
    'application-title-on-pilot-list': [(1, None, 'A1', 'wrong_form', '标题“长宁区建设 2026 年度节水型小区申报表”不是微水洗车业务小区建议名单', "the title '长宁区建设 2026 年度节水型小区申报表' is not that of the car-wash pilot list (附件1)")],
    'three-pilots': [(None, None, None, 'too_many_pilots', '微水洗车试点小区填了 3 个，每区应推荐 1–2 个', '3 car-wash pilot communities listed; each district recommends 1-2')],
    'no-pilot': [(None, None, None, 'too_few_pilots', '微水洗车试点小区填了 0 个，每区应推荐 1–2 个', '0 car-wash pilot communities listed; each district recommends 1-2')],
    'pilot-list-without-address': [(1, '地址', None, 'missing_column', '第1行表头缺少“地址”列', 'row 1: the header has no column 地址 (address)')],
    'neither-utf8-nor-gb18030': [(None, None, None, 'bad_file', '无法识别文件的文字编码（请保存为 UTF-8 编码的 CSV）', "the file's text encoding is not recognised (save it as CSV UTF-8)")],
    'nul-in-csv': [(2, None, None, 'bad_file', '文件不是文本（CSV）文件：第2行含有空字符（NUL）', 'the file is not text (CSV): line 2 holds a NUL character')],
    'xlsx-uploaded-as-csv': [(None, None, None, 'bad_file', '这是 Excel 工作簿，不是 CSV 文件；请按 XLSX 上传', 'this is an Excel workbook, not a CSV file; upload it as XLSX')],
    'csv-uploaded-as-xlsx': [(None, None, None, 'bad_file', '文件不是 XLSX 格式（File is not a zip file）', 'the file is not an XLSX workbook (File is not a zip file)')],
    'old-xls': [(None, None, None, 'bad_file', '这是旧版 .xls 文件，请在 Excel 中另存为 .xlsx 后上传', 'this is an old .xls file; save it from Excel as .xlsx and upload that')],
    'xlsx-empty-file': [(None, None, None, 'bad_file', '文件不是 XLSX 格式（File is not a zip file）', 'the file is not an XLSX workbook (File is not a zip file)')],
    'xlsx-truncated': [(None, None, None, 'bad_file', '文件不是 XLSX 格式（File is not a zip file）', 'the file is not an XLSX workbook (File is not a zip file)')],
    'zip-bomb': [(None, None, None, 'bad_file', '文件解压后有 68157440 字节，不像一张申报表', 'the workbook unzips to 68157440 bytes, far more than a form')],
    'csv-field-over-limit': [(2, None, None, 'bad_file', '无法读取 CSV 文件：第2行（field larger than field limit (131072)）', 'the CSV file cannot be read: line 2 (field larger than field limit (131072))')],
    'xlsx-households-text': [(2, '户数', 'J2', 'bad_number', '第2行「户数」：“约1460户”不是整数', "row 2, 户数 (households): '约1460户' is not a whole number")],
    'xlsx-households-bool': [(2, '户数', 'J2', 'bad_number', '第2行「户数」：“True”不是整数', "row 2, 户数 (households): 'True' is not a whole number")],
}  # fmt: skip


@pytest.mark.parametrize(("case", "data", "fmt", "kind"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_form_is_refused_with_every_problem_located_in_both_languages(
    case: str, data: bytes, fmt: Fmt, kind: FormKind
) -> None:
    with pytest.raises(FormError) as caught:
        read_form(data, fmt, kind, DISTRICT)
    got = [(p.row, p.column, p.cell, p.code, p.zh, p.en) for p in caught.value.problems]
    assert got == EXPECTED[case]
    assert str(caught.value) == "\n".join(p.en for p in caught.value.problems)


def test_every_form_case_has_its_expected_problems() -> None:
    assert sorted(EXPECTED) == sorted(c[0] for c in CASES)


# --- through the API ------------------------------------------------------------------------------

FORM_URL = "/districts/changning/forms/2026"

#: (case id, query, body, Content-Type, every detail as (loc, type), zh-CN details, English details)
API_CASES: list[tuple[str, dict[str, str], bytes, str, list[tuple[list[str], str]], list[str], list[str]]] = [
    (
        "bad-phone-and-postcode",
        {"format": "csv"},
        csv(row(phone="626812", postcode="20033")),
        "text/csv",
        [(["row 2", "电话"], "bad_phone"), (["row 2", "邮编"], "bad_postcode")],
        [
            "第2行「电话」：“626812”不是有效的电话号码（座机如 021-62681234 或 62681234，或11位手机号）",
            "第2行「邮编」：“20033”不是6位数字的邮政编码",
        ],
        [
            "row 2, 电话 (phone): '626812' is not a valid phone number (landline like 021-62681234 or "
            "62681234, or an 11-digit mobile)",
            "row 2, 邮编 (postcode): '20033' is not a 6-digit postcode",
        ],
    ),
    (
        "xlsx-cell-named",
        {"format": "xlsx"},
        xlsx([XH, [*GOODX[:9], "约1460户", 3650]]),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        [(["J2", "户数"], "bad_number")],
        ["第2行「户数」：“约1460户”不是整数"],
        ["row 2, 户数 (households): '约1460户' is not a whole number"],
    ),
    (
        "json-body-read-as-xlsx",
        {"format": "xlsx"},
        b'{"rows": []}',
        "application/json",
        [(["form"], "bad_file")],
        ["文件不是 XLSX 格式（File is not a zip file）"],
        ["the file is not an XLSX workbook (File is not a zip file)"],
    ),
    (
        "empty-body",
        {"format": "csv"},
        b"",
        "text/csv",
        [(["form"], "bad_file")],
        ["前 10 行中找不到含“序号”和“小区名称”的表头行，这不是节水型小区申报表"],
        ["no header row with 序号 and 小区名称 in the first 10 rows: this is not the water-saving community "
         "application form (附件2)"],
    ),
    (
        "pilot-list-as-application",
        {"format": "csv", "form": "application"},
        csv(prow(), header=PHEADER),
        "text/csv",
        [(["row 1", "户数"], "missing_column"), (["row 1", "人口"], "missing_column")],
        ["第1行表头缺少“户数”列", "第1行表头缺少“人口”列"],
        ["row 1: the header has no column 户数 (households)", "row 1: the header has no column 人口 (population)"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "query", "body", "content_type", "details", "zh", "en"), API_CASES, ids=[c[0] for c in API_CASES]
)
def test_a_bad_form_upload_is_422_with_each_problem_in_the_callers_language(
    corpus_api: Api,
    case: str,
    query: dict[str, str],
    body: bytes,
    content_type: str,
    details: list[tuple[list[str], str]],
    zh: list[str],
    en: list[str],
) -> None:
    for lang, texts, message in (
        ("zh-CN", zh, f"申报表有 {len(details)} 处问题，未保存任何内容"),
        ("en", en, f"the form has {len(details)} problem(s); nothing was stored"),
    ):
        response = send(
            corpus_api, "POST", FORM_URL, "admin", lang, params=query, content=body,
            headers={"Content-Type": content_type},
        )  # fmt: skip
        error = error_of(response)
        assert (response.status_code, error["code"], error["message"]) == (422, "invalid_form", message)
        assert [(d["loc"], d["type"]) for d in error["details"]] == details
        assert [d["message"] for d in error["details"]] == texts


def test_an_upload_over_the_limit_is_413_payload_too_large(corpus_api: Api) -> None:
    """RFC 9110 §15.5.14: content larger than the server will process is 413 (the API answers 400)."""
    body = b"x" * (MAX_FORM_BYTES + 1)
    for lang in ("zh-CN", "en"):
        response = send(
            corpus_api, "POST", FORM_URL, "admin", lang,
            params={"format": "csv"}, content=body, headers={"Content-Type": "text/csv"},
        )  # fmt: skip
        error = error_of(response)
        assert (response.status_code, error["code"]) == (413, "payload_too_large"), error
        assert "5 MB" in error["message"]
