"""The programme's two forms as files: read, validate and write them (沪水务〔2020〕610号, 附件1 and 附件2).

Each district sends the Water Authority an application form (附件2, 节水型小区申报表: at most 8
communities, at most 2 of them applying as benchmark communities) and a short list of car-wash pilots
(附件1, 开展微水洗车业务小区建议名单: 1-2 communities). The API and the command line take these forms
as uploaded XLSX or CSV files and hand them out again filled from the registry; this module is the
pure part in between: bytes in, `FormRow`s out (or one `FormError` listing every problem with its row,
column and cell, in Chinese and English), and `FormRow`s in, bytes out. No database, no network.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from pydantic import BaseModel, ConfigDict

from jieshui.errors import JieshuiError
from jieshui.inventory import (
    MAX_APPLICATIONS_PER_DISTRICT,
    MAX_BENCHMARKS_PER_DISTRICT,
    MAX_CAR_WASH_PILOTS_PER_DISTRICT,
    PEOPLE_PER_HOUSEHOLD,
    PHONE_PATTERN,
)

Format = Literal["xlsx", "csv"]


class FormKind(StrEnum):
    """Which of the notice's two forms a file is."""

    APPLICATION = "application"  # 附件2: 区建设 YYYY 年度节水型小区申报表
    CAR_WASH_PILOT = "car_wash_pilot"  # 附件1: 开展微水洗车业务小区建议名单


SEQ = "序号"
STREET_TOWN = "街道/镇"
NAME = "小区名称"
BENCHMARK = "申报示范小区"
RESIDENTS_COMMITTEE = "居委"
CONTACT = "联系人"
PHONE = "电话"
POSTCODE = "邮编"
ADDRESS = "地址"
HOUSEHOLDS = "户数"
POPULATION = "人口"

#: The headers as `write_form` exports them, in the notice's order. The notice's own benchmark header
#: ("申报示范小区在此栏打“√”") and its variants are accepted on reading.
COLUMNS: dict[FormKind, tuple[str, ...]] = {
    FormKind.APPLICATION: (
        SEQ, STREET_TOWN, NAME, BENCHMARK, RESIDENTS_COMMITTEE, CONTACT, PHONE, POSTCODE, ADDRESS,
        HOUSEHOLDS, POPULATION,
    ),
    FormKind.CAR_WASH_PILOT: (SEQ, STREET_TOWN, NAME, RESIDENTS_COMMITTEE, CONTACT, PHONE, POSTCODE, ADDRESS),
}  # fmt: skip

#: What each header means, for the English half of every message.
COLUMN_EN: dict[str, str] = {
    SEQ: "no.",
    STREET_TOWN: "street/town",
    NAME: "community name",
    BENCHMARK: "benchmark application",
    RESIDENTS_COMMITTEE: "residents' committee",
    CONTACT: "contact",
    PHONE: "phone",
    POSTCODE: "postcode",
    ADDRESS: "address",
    HOUSEHOLDS: "households",
    POPULATION: "population",
}

#: The longest text a column may hold; api.db.Application's SQL columns take these widths (电话 and 邮编
#: are bounded by their patterns). Before, PostgreSQL refused a longer value when an accepted form was
#: stored: a 500.
MAX_TEXT_LENGTH: dict[str, int] = {
    STREET_TOWN: 200,
    NAME: 200,
    RESIDENTS_COMMITTEE: 200,
    CONTACT: 100,
    ADDRESS: 300,
}
#: The largest 户数, 人口 and 序号 stored: an SQL INTEGER (PostgreSQL's is 32-bit; SQLite's 64-bit).
#: A larger one made an accepted form a 500 when it was stored.
MAX_INTEGER = 2**31 - 1

#: Media types for serving the files (the API's Content-Type).
MEDIA_TYPES: dict[str, str] = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}

# The text columns, in form order, with the FormRow field each fills.
_TEXT_FIELDS: dict[str, str] = {
    STREET_TOWN: "street_town",
    NAME: "name",
    RESIDENTS_COMMITTEE: "residents_committee",
    CONTACT: "contact",
    PHONE: "phone",
    POSTCODE: "postcode",
    ADDRESS: "address",
}
_PHONE_RE = re.compile(PHONE_PATTERN)
_POSTCODE_RE = re.compile(r"\d{6}")
_WHOLE_RE = re.compile(r"[+-]?(\d+|\d{1,3}(,\d{3})+)(\.0*)?")  # 1460, 1,460 (Excel's CSV), 1460.0
# int() refuses text of more than sys.get_int_max_str_digits() digits (4300: a ValueError, which was a
# 500); a number of far more digits than any count or 序号 is read as no number.
_MAX_WHOLE_DIGITS = 100
_BENCHMARK_MARKS = frozenset({"√", "✓", "✔", "是", "Y", "y", "1"})
# openpyxl refuses these in cell text (XML 1.0 has no way to store them); refusing them on reading as
# well keeps every accepted row writable.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Excel evaluates a CSV cell starting with one of these as a formula (CSV injection); such cells are
# written behind an apostrophe, which reading removes again, so the round trip stays exact.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
_HEADER_SCAN_ROWS = 10
_NOTE_STARTS = ("注", "备注")
# A ten-row form unzips to some tens of kilobytes; far more is a zip bomb, not a form. zipfile never
# inflates a member past the size its directory declares, so checking the declared sizes bounds memory.
_MAX_UNZIPPED_BYTES = 64 * 1024 * 1024
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the pre-2007 .xls format
_ZIP_MAGIC = b"PK\x03\x04"


class FormRow(BaseModel):
    """One community on a form. Pilots have no benchmark mark, households or population."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int  # 序号
    street_town: str  # 街道/镇
    name: str  # 小区名称
    benchmark: bool = False  # 申报示范小区 (√)
    residents_committee: str  # 居委
    contact: str  # 联系人
    phone: str  # 电话
    postcode: str  # 邮编
    address: str  # 地址
    households: int | None = None  # 户数
    population: int | None = None  # 人口


class FormProblem(BaseModel):
    """One thing wrong with an uploaded form, located as a person sees the file, in Chinese and English."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    row: int | None  # 1-based, counting the title and header rows; None for the form as a whole
    column: str | None  # the Chinese header, e.g. "电话"
    cell: str | None  # e.g. "G5" (XLSX only)
    code: str  # machine-readable, e.g. "bad_phone"
    zh: str
    en: str


class FormError(JieshuiError):
    """A form file was refused; `problems` lists every problem found, the message one per line."""

    def __init__(self, problems: list[FormProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.en for p in problems))


@dataclass(frozen=True)
class FormLimits:
    """The programme's per-district limits and the plausible people per household (DOMAIN.md)."""

    max_applications: int = MAX_APPLICATIONS_PER_DISTRICT
    max_benchmarks: int = MAX_BENCHMARKS_PER_DISTRICT
    min_pilots: int = 1
    max_pilots: int = MAX_CAR_WASH_PILOTS_PER_DISTRICT
    min_people_per_household: float = PEOPLE_PER_HOUSEHOLD[0]
    max_people_per_household: float = PEOPLE_PER_HOUSEHOLD[1]


DEFAULT_LIMITS = FormLimits()


def form_title(kind: FormKind, district_name: str, year: int) -> str:
    """The form's title as the notice words it, e.g. "长宁区建设 2026 年度节水型小区申报表"."""
    district = district_name.strip()
    if not district.endswith("区"):
        district += "区"  # "长宁" and "长宁区" name the same district
    if kind is FormKind.APPLICATION:
        return f"{district}建设 {year} 年度节水型小区申报表"
    return f"{district}开展微水洗车业务小区建议名单（{year} 年度）"


# --- reading --------------------------------------------------------------------------------------


@dataclass
class _Sheet:
    """A file's cells as rows of raw values, whatever the format: what `_parse` reads."""

    rows: list[tuple[int, list[object]]]  # (1-based row number, values left to right)
    xlsx: bool  # cells have references (G5); CSV text cells may carry the formula-guard apostrophe
    vertical_merges: list[tuple[int, int, int]] = field(default_factory=list)  # (first row, last row, col)


def read_form(
    data: bytes,
    fmt: Format,
    kind: FormKind,
    district_name: str,
    limits: FormLimits = DEFAULT_LIMITS,
) -> list[FormRow]:
    """Read and validate a filled-in form; raise FormError listing every problem, else return its rows."""
    if fmt == "xlsx":
        sheet = _xlsx_sheet(data)
    elif fmt == "csv":
        sheet = _csv_sheet(data)
    else:
        raise ValueError(f"unknown form format {fmt!r} (xlsx or csv)")
    return _parse(sheet, kind, district_name, limits)


def _bad_file(zh: str, en: str, row: int | None = None) -> FormError:
    return FormError([FormProblem(row=row, column=None, cell=None, code="bad_file", zh=zh, en=en)])


def _xlsx_sheet(data: bytes) -> _Sheet:
    if data.startswith(_OLE2_MAGIC):
        raise _bad_file(
            "这是旧版 .xls 文件，请在 Excel 中另存为 .xlsx 后上传",
            "this is an old .xls file; save it from Excel as .xlsx and upload that",
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
    # What zipfile raises on a damaged archive: BadZipFile, NotImplementedError (unknown zip version or
    # compression), UnicodeDecodeError (a ValueError; a member name), OSError and EOFError (truncation).
    except (zipfile.BadZipFile, NotImplementedError, ValueError, OSError, EOFError) as exc:
        raise _bad_file(f"文件不是 XLSX 格式（{exc}）", f"the file is not an XLSX workbook ({exc})") from exc
    if unzipped > _MAX_UNZIPPED_BYTES:
        raise _bad_file(
            f"文件解压后有 {unzipped} 字节，不像一张申报表",
            f"the workbook unzips to {unzipped} bytes, far more than a form",
        )
    try:
        workbook = load_workbook(io.BytesIO(data), data_only=True)
    # Broad on purpose: openpyxl builds the workbook from untrusted XML through descriptor classes whose
    # validators raise whatever they raise, and documents none of it. Fuzzing corrupt workbooks gave
    # ParseError (a SyntaxError), TypeError, ValueError, KeyError, OSError, NotImplementedError and
    # zlib.error; every one of them means "not a workbook we can read", which is what the caller is told.
    except Exception as exc:
        raise _bad_file(
            f"无法读取 XLSX 文件（{type(exc).__name__}: {exc}）",
            f"the XLSX workbook cannot be read ({type(exc).__name__}: {exc})",
        ) from exc
    if not workbook.worksheets:
        raise _bad_file("XLSX 文件中没有工作表", "the XLSX workbook has no worksheet")
    worksheet = workbook.worksheets[0]
    rows: list[tuple[int, list[object]]] = []
    for number, values in enumerate(worksheet.iter_rows(min_row=1, values_only=True), start=1):
        cells: list[object] = list(values)
        rows.append((number, cells))
    merges = [
        (merged.min_row, merged.max_row, merged.min_col - 1)
        for merged in worksheet.merged_cells.ranges
        if merged.min_col == merged.max_col and merged.max_row > merged.min_row
    ]
    return _Sheet(rows=rows, xlsx=True, vertical_merges=merges)


def _csv_sheet(data: bytes) -> _Sheet:
    if data.startswith(_ZIP_MAGIC) or data.startswith(_OLE2_MAGIC):
        raise _bad_file(
            "这是 Excel 工作簿，不是 CSV 文件；请按 XLSX 上传",
            "this is an Excel workbook, not a CSV file; upload it as XLSX",
        )
    text = _decode(data)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1  # where to look, not just "somewhere"
        raise _bad_file(
            f"文件不是文本（CSV）文件：第{line}行含有空字符（NUL）",
            f"the file is not text (CSV): line {line} holds a NUL character",
            row=line,
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        records = list(reader)
    except csv.Error as exc:  # a field over csv.field_size_limit(); the reader tolerates bad quoting
        line = reader.line_num
        raise _bad_file(
            f"无法读取 CSV 文件：第{line}行（{exc}）",
            f"the CSV file cannot be read: line {line} ({exc})",
            row=line,
        ) from exc
    rows: list[tuple[int, list[object]]] = [(n, list(r)) for n, r in enumerate(records, start=1)]
    return _Sheet(rows=rows, xlsx=False)


def _decode(data: bytes) -> str:
    """UTF-8 with or without BOM; also UTF-16 ("Unicode text") and GB18030 (Chinese Excel's "CSV")."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encodings: tuple[str, ...] = ("utf-16",)
    else:
        # Excel on Chinese Windows saves "CSV (逗号分隔)" in the ANSI code page, GBK; GB18030 is its
        # superset. Strict UTF-8 rarely decodes GBK text by accident, so trying it first is safe.
        encodings = ("utf-8-sig", "gb18030")
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise _bad_file(
        "无法识别文件的文字编码（请保存为 UTF-8 编码的 CSV）",
        "the file's text encoding is not recognised (save it as CSV UTF-8)",
    )


def _delimiter(text: str) -> str:
    """The header line's separator: comma, or the tab or semicolon a spreadsheet may have used."""
    for line in text.splitlines()[:_HEADER_SCAN_ROWS]:
        if SEQ in line and NAME in line:
            return max(",\t;", key=line.count)
    return ","


def _text(value: object) -> str:
    """A cell as the text a person sees, stripped; numbers without a trailing ".0"; line breaks as \\n."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    # XLSX stores a line break in a cell as \n whatever was typed; CSV keeps \r\n. Reading both alike
    # means a form reads the same in either format.
    return str(value).replace("\r\n", "\n").replace("\r", "\n").strip()


def _header_key(value: object) -> str:
    """A header cell as compared: compatibility forms folded (（√） -> (√)), all whitespace removed."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", _text(value)))


_HEADER_KEYS = {_header_key(h): h for h in COLUMNS[FormKind.APPLICATION]}


def _canonical_header(value: object) -> str | None:
    key = _header_key(value)
    if key.startswith(_header_key(BENCHMARK)):
        return BENCHMARK  # "申报示范小区（√）", "申报示范小区在此栏打“√”"...
    return _HEADER_KEYS.get(key)


def _unguard(text: str) -> str:
    """Undo `_guard`: a CSV cell written as "'=..." reads as "=..."."""
    if len(text) > 1 and text[0] == "'" and text[1:].startswith(_FORMULA_START):
        return text[1:]
    return text


def _guard(text: str) -> str:
    """Keep Excel from evaluating a CSV cell as a formula (and keep the apostrophe itself reversible)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _whole(value: object) -> int | None:
    """A whole number from a cell (1460, 1460.0, "1460", "1,460"); None if it is not one."""
    if isinstance(value, bool):
        return None  # Excel's TRUE/FALSE is no count
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = _text(value)
    if not _WHOLE_RE.fullmatch(text):
        return None
    digits = text.split(".")[0].replace(",", "")
    return int(digits) if len(digits) <= _MAX_WHOLE_DIGITS else None


def _cell_ref(sheet: _Sheet, row: int, col: int) -> str | None:
    return f"{get_column_letter(col + 1)}{row}" if sheet.xlsx else None


def _form_problem(code: str, zh: str, en: str, column: str | None = None) -> FormProblem:
    return FormProblem(row=None, column=column, cell=None, code=code, zh=zh, en=en)


@dataclass
class _Entry:
    """A data row as the form-level checks see it, whether or not its cells were valid."""

    row: int
    name: str
    benchmark: bool
    form_row: FormRow | None


def _parse(sheet: _Sheet, kind: FormKind, district_name: str, limits: FormLimits) -> list[FormRow]:
    problems: list[FormProblem] = []
    header_at = next(
        (
            i
            for i, (_, values) in enumerate(sheet.rows[:_HEADER_SCAN_ROWS])
            if {SEQ, NAME} <= {_canonical_header(v) for v in values}
        ),
        None,
    )
    if header_at is None:
        raise _bad_file(
            f"前 {_HEADER_SCAN_ROWS} 行中找不到含“{SEQ}”和“{NAME}”的表头行，这不是{_form_name_zh(kind)}",
            f"no header row with {SEQ} and {NAME} in the first {_HEADER_SCAN_ROWS} rows: "
            f"this is not the {_form_name_en(kind)}",
        )
    # Problems are listed in sheet order: the title above the header, the header, the rows, the form.
    problems.extend(_check_titles(sheet, sheet.rows[:header_at], kind, district_name))
    header_row, header_values = sheet.rows[header_at]
    wanted = set(COLUMNS[kind])
    columns: dict[str, int] = {}
    for col, value in enumerate(header_values):
        header = _canonical_header(value)
        if header is None or header not in wanted:
            continue  # extra columns (备注...) and the other form's columns are ignored
        if header in columns:
            first = get_column_letter(columns[header] + 1)
            problems.append(
                FormProblem(
                    row=header_row,
                    column=header,
                    cell=_cell_ref(sheet, header_row, col),
                    code="duplicate_column",
                    zh=f"第{header_row}行表头中“{header}”出现了两次（第 {first} 列和第 "
                    f"{get_column_letter(col + 1)} 列）",
                    en=f"row {header_row}: the header has {header} ({COLUMN_EN[header]}) twice "
                    f"(columns {first} and {get_column_letter(col + 1)})",
                )
            )
            continue
        columns[header] = col
    for header in COLUMNS[kind]:
        if header != BENCHMARK and header not in columns:
            problems.append(
                FormProblem(
                    row=header_row,
                    column=header,
                    cell=None,
                    code="missing_column",
                    zh=f"第{header_row}行表头缺少“{header}”列",
                    en=f"row {header_row}: the header has no column {header} ({COLUMN_EN[header]})",
                )
            )

    # A street (or any column) merged down over several communities counts for each of them.
    for first_row, last_row, col in sheet.vertical_merges:
        if first_row > header_row:
            top = sheet.rows[first_row - 1][1]
            value = top[col] if col < len(top) else None
            for number in range(first_row + 1, min(last_row, len(sheet.rows)) + 1):
                cells = sheet.rows[number - 1][1]
                if col < len(cells):
                    cells[col] = value

    entries: list[_Entry] = []
    first_seen: dict[str, int] = {}
    seq_col = columns.get(SEQ, 0)
    for number, values in sheet.rows[header_at + 1 :]:
        filled = [col for col, v in enumerate(values) if _text(v)]
        if filled and filled[0] <= seq_col and _text(values[filled[0]]).startswith(_NOTE_STARTS):
            break  # the notice's notes (注：1、请于...) follow the data
        mapped = {h for h, col in columns.items() if col < len(values) and _text(values[col])}
        if not mapped or mapped == {SEQ}:
            continue  # an empty row, or one of the notice's numbered blank rows
        entry, row_problems = _parse_row(sheet, number, values, columns, kind, len(entries) + 1, limits)
        problems.extend(row_problems)
        if entry.name:
            key = re.sub(r"\s+", "", unicodedata.normalize("NFKC", entry.name))
            if key in first_seen:
                problems.append(
                    FormProblem(
                        row=number,
                        column=NAME,
                        cell=_cell_ref(sheet, number, columns[NAME]),
                        code="duplicate_name",
                        zh=f"第{number}行「{NAME}」：“{entry.name}”与第{first_seen[key]}行重复",
                        en=f"row {number}, {NAME} ({COLUMN_EN[NAME]}): '{entry.name}' is also on row "
                        f"{first_seen[key]}",
                    )
                )
            else:
                first_seen[key] = number
        entries.append(entry)
    problems.extend(_check_counts(entries, kind, limits))
    if problems:
        raise FormError(problems)
    return [e.form_row for e in entries if e.form_row is not None]


def _form_name_zh(kind: FormKind) -> str:
    return "节水型小区申报表" if kind is FormKind.APPLICATION else "微水洗车业务小区建议名单"


def _form_name_en(kind: FormKind) -> str:
    return (
        "water-saving community application form (附件2)"
        if kind is FormKind.APPLICATION
        else "car-wash pilot list (附件1)"
    )


def _check_titles(
    sheet: _Sheet, title_rows: list[tuple[int, list[object]]], kind: FormKind, district_name: str
) -> list[FormProblem]:
    """The rows above the header: the title must be this form's, and name this district if any."""
    problems: list[FormProblem] = []
    expected = re.sub(r"\s+", "", district_name).removesuffix("区")
    district_checked = False
    for number, values in title_rows:
        col, title = next(((c, _text(v)) for c, v in enumerate(values) if _text(v)), (0, ""))
        compact = re.sub(r"\s+", "", unicodedata.normalize("NFKC", title))
        cell = _cell_ref(sheet, number, col)
        # 附件1's title speaks of car washing (洗车), 附件2's is a 申报表 (application form).
        pilot_title = "洗车" in compact
        application_title = "申报表" in compact and not pilot_title
        if pilot_title if kind is FormKind.APPLICATION else application_title:
            problems.append(
                FormProblem(
                    row=number,
                    column=None,
                    cell=cell,
                    code="wrong_form",
                    zh=f"标题“{title}”不是{_form_name_zh(kind)}",
                    en=f"the title '{title}' is not that of the {_form_name_en(kind)}",
                )
            )
        named = _district_in_title(compact)
        if named is None or district_checked:
            continue
        district_checked = True
        # "2026年度长宁区..." names 长宁 too; what must not happen is another district's name.
        if named and not named.endswith(expected):
            problems.append(
                FormProblem(
                    row=number,
                    column=None,
                    cell=cell,
                    code="wrong_district",
                    zh=f"标题“{title}”是{named}区的表，不是{expected}区的",
                    en=f"the title '{title}' is for {named}区, not {expected}区",
                )
            )
    return problems


def _district_in_title(compact: str) -> str | None:
    """The district a title names ("" for the notice's blank "区建设..."), None if it names none.

    The district is the text before the first 区 that is not part of 小区 or 社区 (附件1's title,
    "开展微水洗车业务小区建议名单", names none), less a leading "附件 2", "上海市" or "2026 年度".
    """
    for match in re.finditer("区", compact):
        i = match.start()
        if i > 0 and compact[i - 1] in "小社":
            continue
        return re.sub(r"^(附件\d*[:：]?)?(\d{4}年度?)?(上海市?)?", "", compact[:i])
    return None


def _parse_row(
    sheet: _Sheet,
    number: int,
    values: list[object],
    columns: dict[str, int],
    kind: FormKind,
    position: int,
    limits: FormLimits,
) -> tuple[_Entry, list[FormProblem]]:
    """One data row: its FormRow if every cell is valid, and a problem for each cell that is not."""
    problems: list[FormProblem] = []

    def raw(header: str) -> object:
        col = columns.get(header)
        return values[col] if col is not None and col < len(values) else None

    def problem(header: str, code: str, zh: str, en: str) -> None:
        problems.append(
            FormProblem(
                row=number,
                column=header,
                cell=_cell_ref(sheet, number, columns[header]),
                code=code,
                zh=f"第{number}行「{header}」：{zh}",
                en=f"row {number}, {header} ({COLUMN_EN[header]}): {en}",
            )
        )

    texts: dict[str, str] = {}
    for header, attribute in _TEXT_FIELDS.items():
        if header not in columns:
            continue  # reported once as missing_column
        value = raw(header)
        if header == POSTCODE and isinstance(value, int | float) and not isinstance(value, bool):
            # Excel stores a typed postcode as a number and drops leading zeros; pad them back.
            text = _text(value).zfill(6)
        else:
            text = _text(value)
        if not sheet.xlsx:
            text = _unguard(text)
        if _CONTROL_RE.search(text):
            problem(header, "bad_text", "含有不可见的控制字符", "contains control characters")
        elif not text:
            problem(header, "missing_field", "未填写（必填）", "is empty (required)")
        elif len(text) > MAX_TEXT_LENGTH.get(header, len(text)):
            limit = MAX_TEXT_LENGTH[header]
            problem(
                header,
                "too_long",
                f"有 {len(text)} 个字符，最多 {limit} 个",
                f"is {len(text)} characters long, longer than {limit}",
            )
        elif header == PHONE and not _PHONE_RE.fullmatch(text):
            hint_zh, hint_en = "", ""
            if isinstance(value, int | float):
                hint_zh = "；该格是数字，座机开头的 0 可能被 Excel 去掉了，请把该列设为文本"
                hint_en = "; the cell is a number, so Excel may have dropped a landline's leading 0: format the column as text"  # noqa: E501
            problem(
                header,
                "bad_phone",
                f"“{text}”不是有效的电话号码（座机如 021-62681234 或 62681234，或11位手机号）{hint_zh}",
                f"'{text}' is not a valid phone number (landline like 021-62681234 or 62681234, "
                f"or an 11-digit mobile){hint_en}",
            )
        elif header == POSTCODE and not _POSTCODE_RE.fullmatch(text):
            problem(
                header,
                "bad_postcode",
                f"“{text}”不是6位数字的邮政编码",
                f"'{text}' is not a 6-digit postcode",
            )
        texts[attribute] = text

    benchmark = False
    if kind is FormKind.APPLICATION and BENCHMARK in columns:
        value = raw(BENCHMARK)
        mark = _text(value)
        if isinstance(value, bool):
            benchmark = value  # a TRUE/FALSE cell says it plainly
        elif mark in _BENCHMARK_MARKS:
            benchmark = True
        elif mark:
            problem(
                BENCHMARK,
                "bad_benchmark_mark",
                f"“{mark}”不是有效标记（申报示范小区请填“√”，否则留空）",
                f"'{mark}' is not a mark (put √ to apply as a benchmark community, else leave it empty)",
            )

    counts: dict[str, int | None] = {HOUSEHOLDS: None, POPULATION: None}
    if kind is FormKind.APPLICATION:
        for header in (HOUSEHOLDS, POPULATION):
            if header not in columns:
                continue
            value = raw(header)
            text = _text(value)
            count = _whole(value)
            if not text:
                problem(header, "missing_field", "未填写（必填）", "is empty (required)")
            elif count is None:
                problem(header, "bad_number", f"“{text}”不是整数", f"'{text}' is not a whole number")
            elif count <= 0:
                problem(
                    header, "not_positive", f"{count} 应为正整数", f"{count} must be a positive whole number"
                )
            elif count > MAX_INTEGER:  # (far larger, the people-per-household ratio overflowed a float)
                problem(
                    header,
                    "too_large",
                    f"{count} 过大（最多 {MAX_INTEGER}）",
                    f"{count} is larger than {MAX_INTEGER}",
                )
            else:
                counts[header] = count
        households, population = counts[HOUSEHOLDS], counts[POPULATION]
        if households is not None and population is not None:
            ratio = population / households
            low, high = limits.min_people_per_household, limits.max_people_per_household
            if not low <= ratio <= high:
                problem(
                    POPULATION,
                    "implausible_household_size",
                    f"{population} 人 / {households} 户 = 每户 {ratio:.1f} 人，不在 {low:g}–{high:g} 人之间"
                    f"（户数和人口是否填反或填错？）",
                    f"{population} people in {households} households is {ratio:.1f} per household, "
                    f"outside {low:g}-{high:g} (swapped or mistyped?)",
                )

    given_seq = _whole(raw(SEQ))
    if given_seq is not None and abs(given_seq) > MAX_INTEGER:
        given_seq = None  # no 序号 SQL can store: the row's position stands in, as for one that is no number
    form_row = None
    if not problems and len(texts) == len(_TEXT_FIELDS):
        form_row = FormRow(
            seq=given_seq if given_seq is not None else position,
            benchmark=benchmark,
            households=counts[HOUSEHOLDS],
            population=counts[POPULATION],
            **texts,
        )
    return _Entry(row=number, name=texts.get("name", ""), benchmark=benchmark, form_row=form_row), problems


def _check_counts(entries: list[_Entry], kind: FormKind, limits: FormLimits) -> list[FormProblem]:
    """The programme's per-district limits (沪水务〔2020〕610号, 附件1 备注 and 附件2 注 2)."""
    n = len(entries)
    if kind is FormKind.CAR_WASH_PILOT:
        low, high = limits.min_pilots, limits.max_pilots
        if low <= n <= high:
            return []
        code = "too_few_pilots" if n < low else "too_many_pilots"
        return [
            _form_problem(
                code,
                f"微水洗车试点小区填了 {n} 个，每区应推荐 {low}–{high} 个",
                f"{n} car-wash pilot communities listed; each district recommends {low}-{high}",
            )
        ]
    if n == 0:
        return [_form_problem("empty_form", "申报表中没有填写任何小区", "the form lists no community")]
    problems: list[FormProblem] = []
    if n > limits.max_applications:
        problems.append(
            _form_problem(
                "too_many_applications",
                f"申报了 {n} 个小区，每区不超过 {limits.max_applications} 个",
                f"{n} communities apply; a district may apply for at most {limits.max_applications}",
            )
        )
    marked = [e for e in entries if e.benchmark]
    if len(marked) > limits.max_benchmarks:
        names_zh = "、".join(e.name or f"第{e.row}行" for e in marked)
        names_en = ", ".join(e.name or f"row {e.row}" for e in marked)
        problems.append(
            _form_problem(
                "too_many_benchmarks",
                f"申报示范小区 {len(marked)} 个（{names_zh}），每区不超过 {limits.max_benchmarks} 个",
                f"{len(marked)} benchmark applications ({names_en}); a district may apply for at "
                f"most {limits.max_benchmarks}",
                column=BENCHMARK,
            )
        )
    return problems


# --- writing --------------------------------------------------------------------------------------


def write_form(rows: Sequence[FormRow], fmt: Format, kind: FormKind, district_name: str, year: int) -> bytes:
    """The form filled with `rows` (序号 renumbered 1..n) as XLSX (titled) or CSV (header and rows)."""
    columns = COLUMNS[kind]
    table = [[_out_value(row, header, seq) for header in columns] for seq, row in enumerate(rows, start=1)]
    problems = [
        FormProblem(
            row=seq + (2 if fmt == "xlsx" else 1),
            column=header,
            cell=None,
            code="bad_text",
            zh=f"第{seq}个小区「{header}」含有不可见的控制字符，无法写入表格",
            en=f"community {seq}, {header} ({COLUMN_EN[header]}): contains control characters, "
            "which a spreadsheet cannot hold",
        )
        for seq, values in enumerate(table, start=1)
        for header, value in zip(columns, values, strict=True)
        if isinstance(value, str) and _CONTROL_RE.search(value)
    ]
    if problems:
        raise FormError(problems)
    if fmt == "xlsx":
        return _write_xlsx(table, columns, form_title(kind, district_name, year), kind)
    if fmt == "csv":
        return _write_csv(table, columns)
    raise ValueError(f"unknown form format {fmt!r} (xlsx or csv)")


def _out_value(row: FormRow, header: str, seq: int) -> str | int | None:
    if header == SEQ:
        return seq
    if header == BENCHMARK:
        return "√" if row.benchmark else None
    if header == HOUSEHOLDS:
        return row.households
    if header == POPULATION:
        return row.population
    text: str = getattr(row, _TEXT_FIELDS[header])
    return text


def _display_width(text: str) -> int:
    """Columns a text takes in Excel: CJK and full-width characters count twice."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _write_xlsx(
    table: list[list[str | int | None]], columns: tuple[str, ...], title: str, kind: FormKind
) -> bytes:
    workbook = Workbook()
    sheet = workbook.worksheets[0]
    sheet.title = "申报表" if kind is FormKind.APPLICATION else "微水洗车建议名单"
    sheet.cell(row=1, column=1, value=title).font = Font(bold=True, size=14)
    sheet.cell(row=1, column=1).alignment = Alignment(horizontal="center", vertical="center")
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(columns))
    sheet.row_dimensions[1].height = 28
    for col, header in enumerate(columns, start=1):
        cell = sheet.cell(row=2, column=col, value=header)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for r, values in enumerate(table, start=3):
        for col, value in enumerate(values, start=1):
            cell = sheet.cell(row=r, column=col, value=value)
            if isinstance(value, str):
                # Text stays text: a phone or postcode must not become a number, and a value that
                # starts with "=" must not become a formula.
                cell.data_type = "s"
                cell.number_format = "@"
            if columns[col - 1] in (SEQ, BENCHMARK):
                cell.alignment = Alignment(horizontal="center")
    for col, header in enumerate(columns, start=1):
        letter = get_column_letter(col)
        if header in (PHONE, POSTCODE):
            # Rows typed in later into the exported form keep leading zeros too.
            sheet.column_dimensions[letter].number_format = "@"
        texts = [header] + [str(values[col - 1]) for values in table if values[col - 1] is not None]
        sheet.column_dimensions[letter].width = min(max(_display_width(t) for t in texts) + 3, 60)
    sheet.freeze_panes = "A3"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _write_csv(table: list[list[str | int | None]], columns: tuple[str, ...]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for values in table:
        writer.writerow(["" if v is None else _guard(v) if isinstance(v, str) else str(v) for v in values])
    # The BOM tells Excel the file is UTF-8; without it Excel on Chinese Windows reads it as GBK.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
