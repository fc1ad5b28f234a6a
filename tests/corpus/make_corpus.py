"""Writes the bad-file corpus (tests/corpus/files/) and its expectations (expected.json).

Each case is one delivered file, with the outcome ingest must give it and a piece of the
message a clerk would read. Run it to regenerate after changing a case:
    .venv/bin/python tests/corpus/make_corpus.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl

from bidui.ids import check_char

HERE = Path(__file__).parent
FILES = HERE / "files"
BASE = HERE / "baseline"


def pid(i: int, born: str = "19800101") -> str:
    first17 = f"522701{born}{i % 1000:03d}"
    return first17 + check_char(first17)


def vehicles_rows(n: int, **override: object) -> list[list[str]]:
    rows = []
    for i in range(n):
        row = {"plate": f"贵J{10000 + i}", "use": "非营运", "type": "K33", "owner": "张伟", "id": pid(i),
               "date": "2020-01-05", "status": "正常"}
        for k, v in override.items():
            if callable(v):
                row[k] = v(i, row[k])
            else:
                row[k] = v
        rows.append([str(x) for x in row.values()])
    return rows


QUOTED_MONEY = '"1,234.50"'
VEHICLE_HEADER = ["号牌号码", "使用性质", "车辆类型", "机动车所有人", "所有人证件号码", "初次登记日期", "机动车状态"]


def csv_text(header: list[str], rows: list[list[str]], sep: str = ",") -> str:
    return "\n".join(sep.join(r) for r in [header, *rows]) + "\n"


def write(name: str, data: bytes | str, encoding: str = "utf-8") -> None:
    (FILES / name).write_bytes(data if isinstance(data, bytes) else data.encode(encoding))


def xlsx(name: str, header: list[str], rows: list[list[object]], first_sheet_empty: bool = False) -> Path:
    import xlsxwriter

    path = FILES / name
    wb = xlsxwriter.Workbook(str(path))
    if first_sheet_empty:
        wb.add_worksheet("说明")
    ws = wb.add_worksheet("数据")
    ws.write_row(0, 0, header)
    for r, row in enumerate(rows, start=1):
        for c, v in enumerate(row):
            if isinstance(v, float):
                ws.write_number(r, c, v)
            else:
                ws.write_string(r, c, str(v))
    wb.close()
    return path


def main() -> None:
    shutil.rmtree(FILES, ignore_errors=True)
    shutil.rmtree(BASE, ignore_errors=True)
    FILES.mkdir(parents=True)
    BASE.mkdir(parents=True)
    cases: list[dict] = []

    def case(file: str, status: str, message: str, baseline: str | None = None, rejects: int | None = None,
             note: str = "") -> None:
        cases.append({"file": file, "status": status, "message": message, "baseline": baseline,
                      "rejects": rejects, "note": note})

    good = csv_text(VEHICLE_HEADER, vehicles_rows(40))
    # A baseline snapshot of 40 vehicles, for the row-count checks.
    (BASE / "vehicles_20261119.csv").write_text(good, encoding="utf-8")

    # --- encodings and bytes
    write("vehicles_utf16.csv", good.encode("utf-16"))
    case("vehicles_utf16.csv", "refused", "UTF-16", note="wrong encoding: UTF-16")
    write("vehicles_latin.csv", good.encode("utf-8") + b"\xff\xfe\xfa")
    case("vehicles_latin.csv", "refused", "neither UTF-8 nor GB18030", note="bytes that are no encoding we accept")
    write("vehicles_bom_gbk.csv", b"\xef\xbb\xbf" + good.encode("gb18030"))
    case("vehicles_bom_gbk.csv", "refused", "byte-order mark", note="a UTF-8 BOM before GB18030 text")
    write("vehicles_junk.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    case("vehicles_junk.csv", "refused", "binary data", note="binary junk")
    write("vehicles_empty.csv", b"")
    case("vehicles_empty.csv", "refused", "empty file", note="zero bytes")
    write("vehicles_blank.csv", "\n\n  \n")
    case("vehicles_blank.csv", "refused", "empty file", note="only blank lines")
    write("vehicles_gbk_ok.csv", good, "gbk")
    case("vehicles_gbk_ok.csv", "accepted", "", baseline="vehicles", note="GBK is accepted (read as GB18030)")

    # --- structure
    write("vehicles_header_only.csv", csv_text(VEHICLE_HEADER, []))
    case("vehicles_header_only.csv", "held", "a header but no data rows", note="header only")
    write("vehicles_no_plate.csv", csv_text(VEHICLE_HEADER[1:], [r[1:] for r in vehicles_rows(10)]))
    case("vehicles_no_plate.csv", "refused", "missing required column(s) for vehicles: plate", note="missing required column")
    hdr = [*VEHICLE_HEADER, "机动车所有人"]
    write("vehicles_dup_header.csv", csv_text(hdr, [[*r, "张伟"] for r in vehicles_rows(5)]))
    case("vehicles_dup_header.csv", "refused", "duplicate header '机动车所有人'", note="duplicate header")
    hdr = [*VEHICLE_HEADER, "车主姓名"]
    write("vehicles_two_names.csv", csv_text(hdr, [[*r, "张伟"] for r in vehicles_rows(5)]))
    case("vehicles_two_names.csv", "refused", "both mean owner_name", note="two synonyms of one column")
    rows = vehicles_rows(10)
    rows[6] = [*rows[6], "多余"]
    write("vehicles_ragged.csv", csv_text(VEHICLE_HEADER, rows))
    case("vehicles_ragged.csv", "refused", "data row 7 has 8 fields, the header has 7", note="a row with an extra field")
    write("vehicles_quote.csv", csv_text(VEHICLE_HEADER, vehicles_rows(3)) + '贵J9,"非营运,K33,张伟\n')
    case("vehicles_quote.csv", "refused", "data row", note="an unclosed quote")
    text = csv_text(VEHICLE_HEADER, vehicles_rows(40))
    write("vehicles_truncated.csv", text[: int(len(text) * 0.4)])
    case("vehicles_truncated.csv", "held", "the last record is cut", baseline="vehicles",
         note="cut mid-row at 40% of its bytes")
    write("vehicles_short.csv", csv_text(VEHICLE_HEADER, vehicles_rows(20)))
    case("vehicles_short.csv", "held", "20 rows, fewer than 90.0%", baseline="vehicles", note="half the rows of last night")

    # --- values
    write("vehicles_bad_status.csv", csv_text(VEHICLE_HEADER, vehicles_rows(40, status=lambda i, v: "报停" if i % 4 == 0 else v)))
    case("vehicles_bad_status.csv", "held", "unknown value (expected 正常 / 转出 / 注销 / 报废 / 查封 / 逾期未检验)",
         note="an unknown enumeration value in a quarter of the rows")
    write("vehicles_one_bad_status.csv", csv_text(VEHICLE_HEADER, vehicles_rows(40, status=lambda i, v: "报停" if i == 9 else v)))
    case("vehicles_one_bad_status.csv", "accepted", "row 10, column status ('报*')", rejects=1,
         note="one unknown value: the value is rejected (the row kept without it), the file applied")
    write("vehicles_bad_date.csv", csv_text(VEHICLE_HEADER, vehicles_rows(40, date=lambda i, v: "2021-02-30" if i % 3 == 0 else v)))
    case("vehicles_bad_date.csv", "held", "impossible date", note="impossible dates (30 February)")
    write("vehicles_date_form.csv", csv_text(VEHICLE_HEADER, vehicles_rows(40, date=lambda i, v: "05/01/2020" if i % 2 else v)))
    case("vehicles_date_form.csv", "held", "not a date in an accepted form", note="a date form the spec does not allow")
    write("vehicles_no_owner.csv", csv_text(VEHICLE_HEADER, vehicles_rows(40, owner=lambda i, v: "" if i % 5 == 0 else v)))
    case("vehicles_no_owner.csv", "held", "required value missing", note="required names left empty")
    write("vehicles_flying.csv", csv_text(VEHICLE_HEADER, vehicles_rows(40, type=lambda i, v: "飞行汽车" if i < 5 else v)))
    case("vehicles_flying.csv", "held", "unknown vehicle type", note="a vehicle type that is neither a GA 802 code nor a name")
    write("vehicles_bad_ids.csv", csv_text(VEHICLE_HEADER, vehicles_rows(40, id=lambda i, v: v[:-1] + ("0" if v[-1] != "0" else "1") if i % 2 else v)))
    case("vehicles_bad_ids.csv", "accepted", "", rejects=0, note="invalid IDs are kept with their status, not rejected")

    # --- XLSX
    rows = [[r[0], r[1], r[2], r[3], float(int(r[4][:15]) * 1000), r[5], r[6]] for r in vehicles_rows(40)]
    xlsx("机动车登记信息（numbers）.xlsx", VEHICLE_HEADER, rows)
    case("机动车登记信息（numbers）.xlsx", "accepted", "", rejects=0, note="ID cells Excel made numbers: kept as excel_mangled")
    path = xlsx("vehicles_cut.xlsx", VEHICLE_HEADER, vehicles_rows(40))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    case("vehicles_cut.xlsx", "refused", "not a readable XLSX workbook", note="a truncated XLSX")
    xlsx("vehicles_second_sheet.xlsx", VEHICLE_HEADER, vehicles_rows(40), first_sheet_empty=True)
    case("vehicles_second_sheet.xlsx", "accepted", "", baseline="vehicles", note="the first sheet with a header row is used")
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(FILES / "vehicles_no_header.xlsx"))
    wb.add_worksheet()
    wb.close()
    case("vehicles_no_header.xlsx", "refused", "no sheet has a header row", note="an empty workbook")
    write("vehicles_fake.xlsx", good)
    case("vehicles_fake.xlsx", "refused", "not a readable XLSX workbook", note="CSV text named .xlsx")

    # --- Parquet
    df = pl.DataFrame({"证件号码": [pid(i) for i in range(30)], "姓名": ["李娜"] * 30, "参保年度": [2026] * 30,
                       "参保状态": ["参保"] * 30})
    df.write_parquet(FILES / "medical_insurance_ok.parquet")
    case("medical_insurance_ok.parquet", "accepted", "", note="Parquet with an integer year column")
    df.drop("参保状态").write_parquet(FILES / "medical_insurance_nostatus.parquet")
    case("medical_insurance_nostatus.parquet", "refused", "missing required column(s) for medical_insurance: status",
         note="Parquet without a required column")
    raw = (FILES / "medical_insurance_ok.parquet").read_bytes()
    write("medical_insurance_cut.parquet", raw[: len(raw) // 2])
    case("medical_insurance_cut.parquet", "refused", "not a readable Parquet file", note="a truncated Parquet file")
    pl.DataFrame({"证件号码": [pid(i) for i in range(30)], "姓名": ["李娜"] * 30, "参保年度": ["二〇二六"] * 30,
                  "参保状态": ["参保"] * 30}).write_parquet(FILES / "medical_insurance_year.parquet")
    case("medical_insurance_year.parquet", "held", "not a year", note="a year written in characters")

    # --- names and types
    write("贫困户家庭成员.csv", "户编号,姓名,证件号码,与户主关系\n1,张伟," + pid(1) + ",户主\n")
    case("贫困户家庭成员.csv", "refused", "matches several datasets", note="a name matching two datasets")
    write("data_20261120.csv", good)
    case("data_20261120.csv", "refused", "names no dataset", note="a name matching no dataset")
    write("vehicles.xls", b"\xd0\xcf\x11\xe0" + b"\x00" * 100)
    case("vehicles.xls", "refused", "unsupported file type .xls", note="old Excel format")
    write("hukou.json", "{}")
    case("hukou.json", "refused", "unsupported file type .json", note="JSON")

    # --- other datasets
    write("divisions_bad.csv", "区划代码,名称,级别,上级区划代码,城乡分类\n52270100000,某县,县,522700000000,\n"
          "522701100000,某镇,镇,522701000000,\n")
    case("divisions_bad.csv", "held", "not a 12-digit division code", note="an 11-digit division code")
    write("medical_claims_money.csv", "证件号码,姓名,结算日期,医疗总费用,个人自付\n" + "".join(
        f"{pid(i)},王芳,2026/3/{i % 28 + 1},{'一万' if i % 2 else QUOTED_MONEY},100\n" for i in range(20)))
    case("medical_claims_money.csv", "held", "not a number", note="money written in characters")
    write("deaths_serial.csv", "证件号码,姓名,死亡日期\n" + "".join(f"{pid(i)},刘洋,{45600 + i}\n" for i in range(10)))
    case("deaths_serial.csv", "accepted", "", note="Excel day serials as dates")
    write("property_units.csv", "权利人证件号码（ＩＤ）,权利人,不动产权证号,所在区域,房屋性质,建筑面积（m²）, 用途 \n" + "".join(
        f"{pid(i)},陈静,黔(2020)第{i}号,城镇,商品房,\"1,20{i}.5\",住宅\n" for i in range(10)))
    case("property_units.csv", "accepted", "", note="headers with units, full width and spaces; a thousands separator")

    (HERE / "expected.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{len(cases)} cases, {sum(c['status'] != 'accepted' for c in cases)} bad files")


if __name__ == "__main__":
    main()
