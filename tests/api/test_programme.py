"""The programme's cycle through the API and the CLI, on real SQL databases and the backfilled influxd:
forms in and out, the deadline, registry entries from applications, the evaluation checklist and its
rules, and the naming list."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

from openpyxl import Workbook, load_workbook

from programme.forms import FormKind, FormRow, write_form
from tests.api.conftest import OTHER, OWN, SITE, Api

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def row(i: int, name: str, benchmark: bool = False, **kw: object) -> FormRow:
    fields: dict[str, object] = {
        "seq": i, "street_town": "新泾镇", "name": name, "benchmark": benchmark,
        "residents_committee": f"{name}居民委员会", "contact": "王丽", "phone": "021-62681234",
        "postcode": "200335", "address": f"长宁区哈密路{1000 + i}弄", "households": 1200, "population": 3000,
    }  # fmt: skip
    fields.update(kw)
    return FormRow.model_validate(fields)


def post_form(
    api: Api,
    data: bytes,
    year: int = 2026,
    form: str = "application",
    fmt: str = "xlsx",
    who: str = "admin",
    lang: str = "en",
):
    return api.post(
        f"/districts/changning/forms/{year}",
        who=who,
        params={"form": form, "format": fmt},
        content=data,
        headers={"Content-Type": XLSX if fmt == "xlsx" else "text/csv", "Accept-Language": lang},
    )


def test_an_application_form_round_trips_and_its_communities_join_the_registry(api: Api) -> None:
    rows = [row(1, "新泾六村", benchmark=True), row(2, "哈密新苑"), row(3, "剑河家苑", benchmark=True)]
    form = write_form(rows, "xlsx", FormKind.APPLICATION, "长宁区", 2026)
    r = post_form(api, form)
    assert r.status_code == 200, r.text
    stored = r.json()
    assert next(a["community"] for a in stored) == OWN  # the inventory's community of that name
    new_id = stored[1]["community"]
    assert new_id.startswith("changning-2026-")
    # the same form again gives the same ids (a district resubmits; the ids stay)
    assert [a["community"] for a in post_form(api, form).json()] == [a["community"] for a in stored]

    communities = {c["id"]: c for c in api.get("/communities").json()}
    assert communities[new_id]["name"] == "哈密新苑"
    assert communities[new_id]["households"] == 1200
    assert len(communities) == 10  # eight of the inventory, two new
    assert api.get(f"/communities/{new_id}/status").json()["devices"] == []  # no meters yet

    exported = api.get("/districts/changning/forms/2026", params={"format": "xlsx"}, who="evaluator")
    assert exported.status_code == 200
    assert exported.headers["content-type"] == XLSX
    sheet = load_workbook(io.BytesIO(exported.content)).active
    assert sheet["A1"].value == "长宁区建设 2026 年度节水型小区申报表"
    assert [c.value for c in sheet[2]] == [
        "序号",
        "街道/镇",
        "小区名称",
        "申报示范小区",
        "居委",
        "联系人",
        "电话",
        "邮编",
        "地址",
        "户数",
        "人口",
    ]
    again = post_form(api, exported.content)
    assert [{k: v for k, v in a.items() if k not in ("id", "submitted_at")} for a in again.json()] == [
        {k: v for k, v in a.items() if k not in ("id", "submitted_at")} for a in stored
    ]
    csv = api.get("/districts/changning/forms/2026", params={"format": "csv"})
    assert csv.text.lstrip("\ufeff").startswith("序号,街道/镇,小区名称,申报示范小区")
    assert post_form(api, csv.content, fmt="csv").status_code == 200

    # a manager reads only their own community's row, and may not import
    mine = api.get("/districts/changning/forms/2026", who="manager").json()
    assert [a["community"] for a in mine] == [OWN]
    assert post_form(api, form, who="manager").status_code == 403
    assert api.get("/districts/changning/forms/2026", who="manager_other").json() == []  # none of theirs

    audit = api.get("/audit").json()
    assert audit[0]["action"] == "application.import"
    assert audit[0]["detail"]["rows"] == 3


def test_a_form_breaking_the_rules_is_refused_whole_with_every_problem(api: Api) -> None:
    good = write_form([row(1, "新泾六村")], "xlsx", FormKind.APPLICATION, "长宁区", 2026)
    assert post_form(api, good).status_code == 200
    nine = write_form(
        [row(i, f"小区{i}") for i in range(1, 10)], "xlsx", FormKind.APPLICATION, "长宁区", 2026
    )
    r = post_form(api, nine)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_form"
    assert [d["type"] for d in err["details"]] == ["too_many_applications"]
    three = write_form(
        [row(i, f"小区{i}", benchmark=True) for i in range(1, 4)],
        "xlsx",
        FormKind.APPLICATION,
        "长宁区",
        2026,
    )
    r = post_form(api, three, lang="zh-CN")
    assert [d["type"] for d in r.json()["error"]["details"]] == ["too_many_benchmarks"]
    assert r.json()["error"]["message"] == "申报表有 1 处问题，未保存任何内容"
    # nothing of either was stored: the earlier form stands
    assert [a["name"] for a in api.get("/districts/changning/forms/2026").json()] == ["新泾六村"]

    # the notice's own layout: its title and header, blank numbered rows, two filled rows with a bad
    # phone and a 7-digit postcode
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["长宁区建设 2026 年度节水型小区申报表"])
    ws.append(
        [
            "序号",
            "街道/镇",
            "小区名称",
            "申报示范小区在此栏打“√”",
            "居委",
            "联系人",
            "电话",
            "邮编",
            "地址",
            "户数",
            "人口",
        ]
    )
    ws.append(
        [1, "新泾镇", "新泾六村", "√", "新泾六村居委", "王丽", "12345", "200335", "哈密路1880弄", 1460, 3650]
    )
    ws.append(
        [
            2,
            "新泾镇",
            "哈密新苑",
            None,
            "哈密新苑居委",
            "李强",
            "13812345678",
            "2003351",
            "哈密路1000弄",
            800,
            2000,
        ]
    )
    for i in range(3, 11):
        ws.append([i])
    buf = io.BytesIO()
    wb.save(buf)
    r = post_form(api, buf.getvalue())
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    assert [(d["loc"], d["type"]) for d in details] == [
        (["G3", "电话"], "bad_phone"),
        (["H4", "邮编"], "bad_postcode"),
    ]


def test_the_deadline_closes_the_form_and_an_admin_can_move_it(api: Api) -> None:
    form = write_form([row(1, "新泾六村")], "xlsx", FormKind.APPLICATION, "长宁区", 2025)
    late = post_form(api, form, year=2025)  # 2025's forms closed on 18 October 2025
    assert late.status_code == 422
    assert late.json()["error"]["code"] == "application_closed"
    assert (
        late.json()["error"]["message"] == "applications for 2025 closed on 2025-10-18 (today is 2026-01-05)"
    )

    cycle = api.get("/cycles/2026", who="manager").json()
    assert cycle["application_deadline"] == "2026-10-18"
    assert cycle["open_now"] == []
    assert [c["year"] for c in api.get("/cycles").json()] == [2025]  # 2025's guidance runs to January
    moved = {
        "application": {"start": "2025-12-01", "end": "2026-01-04"},
        "training": {"start": "2026-11-11", "end": "2026-11-20"},
        "guidance": {"start": "2026-11-01", "end": "2027-01-31"},
        "evaluation": {"start": "2027-02-01", "end": "2027-04-30"},
        "naming": {"start": "2027-05-01", "end": "2027-05-31"},
    }
    assert api.client.put("/cycles/2026", json=moved, headers=api.headers("evaluator")).status_code == 403
    put = api.client.put("/cycles/2026", json=moved, headers=api.headers("admin"))
    assert put.status_code == 200, put.text
    assert (
        post_form(api, write_form([row(1, "新泾六村")], "xlsx", FormKind.APPLICATION, "长宁区", 2026)).json()[
            "error"
        ]["code"]
        == "application_closed"
    )
    bad = {**moved, "evaluation": {"start": "2025-12-15", "end": "2025-12-20"}}
    r = api.client.put("/cycles/2026", json=bad, headers={**api.headers("admin"), "Accept-Language": "en"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_cycle"


def test_car_wash_pilots_one_or_two_per_district(api: Api) -> None:
    nominee = row(1, "仙霞西村", households=None, population=None)
    one = write_form([nominee], "csv", FormKind.CAR_WASH_PILOT, "长宁区", 2026)
    r = post_form(api, one, form="car_wash_pilot", fmt="csv")
    assert r.status_code == 200, r.text
    assert r.json()[0]["community"] == OTHER
    pilots = [row(i, f"小区{i}", households=None, population=None) for i in range(1, 4)]
    three = write_form(pilots, "csv", FormKind.CAR_WASH_PILOT, "长宁区", 2026)
    r = post_form(api, three, form="car_wash_pilot", fmt="csv")
    assert [d["type"] for d in r.json()["error"]["details"]] == ["too_many_pilots"]
    # pilots are not applications: the registry gets no community from them, but marks the nominee
    communities = {c["id"]: c for c in api.get("/communities").json()}
    assert len(communities) == 8
    assert communities[OTHER]["car_wash_pilot"] is True  # false in the inventory
    assert communities["zhoujiaqiao-yuan"]["car_wash_pilot"] is False


def test_evaluation_checklist_rules_and_the_naming_list(api: Api) -> None:
    path = f"/communities/{OWN}/evaluations/2025"
    blank = api.get(path, who="manager").json()
    assert blank["check"]["run_id"] is None
    assert blank["allowed_results"] == ["not_passed"]
    assert blank["applied_benchmark"] is True  # the inventory: benchmark applicant of 2025
    body = {"listen_done": True, "look_done": True, "fixture_adoption_pct": 100, "result": "water_saving"}
    r = api.client.put(path, json=body, headers={**api.headers("evaluator"), "Accept-Language": "en"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "result_not_allowed"
    assert [d["type"] for d in r.json()["error"]["details"]] == ["no_verification"]
    assert api.client.put(path, json=body, headers=api.headers("manager")).status_code == 403

    assert api.post(f"/communities/{OWN}/verifications/2025", who="evaluator").status_code == 201
    r = api.client.put(path, json=body, headers={**api.headers("evaluator"), "Accept-Language": "zh-CN"})
    assert r.status_code == 422  # twelve days of data: insufficient, so not a water-saving community
    assert r.json()["error"]["details"][0]["type"] == "water_saving_needs_evidence"
    assert "insufficient_data" in r.json()["error"]["message"]
    done = api.client.put(
        path,
        json={**body, "result": "not_passed", "assess_notes": "数据不足"},
        headers=api.headers("evaluator"),
    )
    assert done.status_code == 200, done.text
    ev = done.json()
    assert ev["check"]["overall"] == "insufficient_data"
    assert ev["result_name"] == {"zh": "未通过", "en": "not passed"}
    assert ev["updated_by"] == api.keys["evaluator"].split("_")[1]
    assert api.get(path, who="manager").json()["result"] == "not_passed"
    assert api.get(f"/communities/{OTHER}/evaluations/2025", who="manager").status_code == 404

    naming = api.get("/districts/changning/naming/2025").json()
    assert len(naming["rows"]) == 8
    last = next(r for r in naming["rows"] if r["community"] == OWN)
    assert last["result"] == "not_passed"
    assert last["evidence"]["coverage"] is not None
    assert last["evidence"]["coverage"] < 0.1  # 12 days of 365
    # the evaluated community first, then those not evaluated
    assert naming["rows"][0]["community"] == OWN
    assert {r["result"] for r in naming["rows"][1:]} == {None}
    page = api.get("/districts/changning/naming/2025", params={"format": "html"})
    assert "长宁区 2025 年度节水型小区考评结果" in page.text
    assert "未通过" in page.text
    book = load_workbook(
        io.BytesIO(api.get("/districts/changning/naming/2025", params={"format": "xlsx"}).content)
    )
    assert book.active is not None
    assert "新泾六村" in [c.value for c in book.active["B"]]
    mine = api.get("/districts/changning/naming/2025", who="manager").json()
    assert [r["community"] for r in mine["rows"]] == [OWN]


def test_jieshui_applications_import_and_export(tmp_path: Path) -> None:
    env = {**os.environ, "JIESHUI_DB_URL": f"sqlite:///{tmp_path}/cli.sqlite3"}
    year = dt.date.today().year + 1  # a cycle whose deadline is ahead
    cmd = [sys.executable, "-m", "jieshui.cli", "applications"]
    form = tmp_path / "changning.xlsx"
    form.write_bytes(
        write_form(
            [row(1, "新泾六村", benchmark=True), row(2, "哈密新苑")],
            "xlsx",
            FormKind.APPLICATION,
            "长宁区",
            year,
        )
    )
    ok = subprocess.run([*cmd, "import", "--district", "changning", "--year", str(year), "--site", str(SITE), str(form)],
                        env=env, capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "2 row(s) stored" in ok.stdout
    out = tmp_path / "out.csv"
    subprocess.run([*cmd, "export", "--district", "changning", "--year", str(year), "--site", str(SITE), str(out)],
                   env=env, check=True, capture_output=True)  # fmt: skip
    assert "新泾六村,√" in out.read_text(encoding="utf-8-sig")

    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        write_form(
            [row(1, "新泾六村", phone="12345"), row(2, "哈密新苑", households=10, population=900)],
            "csv",
            FormKind.APPLICATION,
            "长宁区",
            year,
        )
    )
    refused = subprocess.run([*cmd, "import", "--district", "changning", "--year", str(year), "--site", str(SITE),
                              "--lang", "en", str(bad)], env=env, capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 2
    lines = refused.stderr.splitlines()
    assert lines[0].startswith(f"{bad}:2:电话: ")
    assert lines[1].startswith(f"{bad}:3:")
    assert "nothing stored" in lines[-1]
    # the earlier form is untouched
    subprocess.run([*cmd, "export", "--district", "changning", "--year", str(year), "--site", str(SITE), str(out)],
                   env=env, check=True, capture_output=True)  # fmt: skip
    assert out.read_text(encoding="utf-8-sig").count("\n") == 3
