"""How a delivered file's load message reads to a person: the messages of bidui.connectors (in
English, for the log and the load log) said in Chinese for the run report, `bidui loads`, the admin
page and the data-quality page, without the file name the row already shows; the row, column and
byte a message names are kept. Every refusal and hold has its words (tests/test_file_messages.py
finds the connectors' messages in their source); a message with none is said by its status with
the original after it (原文), never by a pointer to a log that a plain run does not write."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bidui.clues.present import FIELD_LABELS, FILE_STATUS_LABELS, RUN_STATUS_LABELS, dataset_title

# A message's words: a format string ({1}: the pattern's first group, {t1}: the group's dataset
# code as its title), or a function of the match and the file's dataset (None when its name names
# none) for a message whose parts need more than that (columns by their headers, lists).
Words = str | Callable[[re.Match, Any], str]

_LABEL = r"data row \d+|the header|a row above the header"  # readers._row_label
_QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""  # a Python repr of a text (a header, a sheet, a masked value)


def _file_dataset(file: str | None) -> Any:
    """The dataset a file's name names (bidui.datasets.dataset_for_filename), None for none."""
    from bidui.datasets import dataset_named

    return dataset_named(file) if file else None


def _column_title(name: str, ds: Any) -> str:
    """A dataset column (its English name in a message) by its Chinese header: the file's dataset's,
    else the first dataset's that has it."""
    return FIELD_LABELS.get(ds.code if ds else "", {}).get(name) or FIELD_LABELS[""].get(name) or "某一列"


def _unquoted(shown: str) -> str:
    """A header or sheet name as a message quotes it (repr), as it was written."""
    import ast

    try:
        text = ast.literal_eval(shown)
    except (ValueError, SyntaxError):
        return shown
    return text if isinstance(text, str) else shown


def _header_title(shown: str, ds: Any) -> str:
    """A delivered header (repr-quoted in the message) in Chinese: as delivered, unless it is a
    column's English name (a header form the spec accepts), then that column's Chinese header."""
    from bidui.connectors.mapping import header_lookup
    from bidui.datasets import header_key

    text = _unquoted(shown)
    if ds is not None and re.search(r"[A-Za-z]{3,}", text):
        name = header_lookup(ds).get(header_key(text))
        if name:
            return _column_title(name, ds)
    return text


def _row_words(label: str) -> str:
    """readers._row_label's data row, as the run report says it."""
    m = re.fullmatch(r"data row (\d+)", label)
    return f"第 {m[1]} 行数据" if m else {"the header": "表头", "a row above the header": "表头上方的一行"}.get(label, "某一行")


def _where_words(kind: str, loc: str) -> str:
    """readers._diagnose's `(comma-separated; spreadsheet row 9, starting on line 8 of the file)`."""
    m = re.fullmatch(r"spreadsheet row (\d+)(?:, starting on line (\d+) of the file)?", loc)
    sep = "制表符分隔" if kind == "tab" else "逗号分隔"
    if not m:
        return sep
    return f"{sep}；表格第 {m[1]} 行" + (f"，从文件第 {m[2]} 行开始" if m[2] else "")


_QUOTE_CAUSES = {
    "a quote closes a quoted field but the field goes on (a stray quote, or one not doubled)":
        "引号已把一个值括起来，后面却还有内容（多了一个引号，或值里的引号没有写成两个）",
    "a quote opened in this row is never closed": "这一行有一个引号，到文件末尾都没有配对的引号",
    "a quoted field runs on for more than 131,072 characters: a quote opened in this row is never closed":
        "一个带引号的值超过 131,072 个字符：这一行有一个引号没有配对的引号",
}


def _quote_problem(m: re.Match, ds: Any) -> str:
    cause = _QUOTE_CAUSES.get(m["cause"], "引号或分隔符有误")
    return (f"{_row_words(m['label'])}格式有误：{cause}；值里的引号要写成两个（\"\"）"
            f"（{_where_words(m['kind'], m['loc'])}）：请部门改正后重新报送")


# The reasons of bidui.connectors.normalise (a rejected value: the rejects table, a file's first).
_REJECT_REASONS: list[tuple[str, str]] = [
    (r"required value missing", "必填项为空"),
    (r"impossible date", "日期不存在（如 2 月 30 日）"),
    (r"not a date in an accepted form", "不是可识别的日期写法"),
    (r"date before (\d+)", "日期早于 {0} 年"),
    (r"date after (\S+) \(in the future\)", "日期晚于 {0}（未来日期）"),
    (r"not a finite number", "不是有效的数字"),
    (r"not a number", "不是数字"),
    (r"negative", "是负数"),
    (r"over the ceiling of ([\d,]+)", "超过上限 {0}"),
    (r"not a year", "不是有效的年份"),
    (r"not a 12-digit division code", "不是 12 位区划代码"),
    (r"unknown vehicle type \(GA 802 code or name\)", "不是可识别的车辆类型（应为 GA 802 代码或车辆类型名称）"),
    (r"control character in an ID number", "证件号码中有控制字符（看不见的字符）"),
    (r"control character in a name", "姓名中有控制字符（看不见的字符）"),
    (r"longer than ([\d,]+) characters", "超过 {0} 个字符"),
    (r"Excel error value \(a formula's result\)", "是 Excel 错误值（公式出错的结果）"),
]


def _reject_reason(reason: str, column: str, ds: Any) -> str:
    """A rejected value's reason in Chinese ("值不合规" for one no pattern knows)."""
    m = re.fullmatch(r"unknown value \(expected (.*)\)", reason)
    if m:
        col = next((c for c in ds.columns if c.name == column), None) if ds else None
        values = [(col.display.get(v, v) if col else v) for v in m[1].split(" / ")]
        shown = "、".join(values) if not any(re.search(r"[A-Za-z]{3,}", v) for v in values) else ""
        return "不在规定的取值范围内" + (f"（应为 {shown}）" if shown else "")
    for pattern, words in _REJECT_REASONS:
        found = re.fullmatch(pattern, reason)
        if found:
            return words.format(*found.groups())
    return "值不合规"


def _shown_value(shown: str) -> str:
    """A masked value as a message quotes it (privacy.quote), in Chinese words where it has any."""
    if shown == "(empty)":
        return "为空"
    return "为 " + re.sub(r"… \(([\d,]+) characters\)", r"…（共\1字）", shown)


def _first(m: re.Match, ds: Any) -> str:
    """The first rejected value of a file (plausibility.first_reject): row, column, value, reason."""
    return (f"首个问题：第 {m['row']} 行“{_column_title(m['column'], ds)}”列的值{_shown_value(m['value'])}，"
            f"{_reject_reason(m['why'], m['column'], ds)}")


def _first_loose(m: re.Match, ds: Any) -> str:
    column = f"“{_column_title(m['column'], ds)}”列" if m["column"] else ""
    return f"首个问题在第 {m['row']} 行{column}"


def _missing_columns(m: re.Match, ds: Any) -> str:
    """mapping.map_headers: the required columns no header names (`name (header / synonym)` each),
    and perhaps that the row taken for the header holds no header at all."""
    from bidui.datasets import BY_CODE

    ds = BY_CODE.get(m["code"], ds)
    said = []
    for name, forms in re.findall(r"(\w+) \(([^)]*)\)", m["columns"]):
        forms_ = [f for f in forms.split(" / ") if f]
        title = _column_title(name, ds)
        others = [f"“{f}”" for f in forms_ if not re.search(r"[A-Za-z]{3,}", f)]
        said.append(f"“{title}”" + (f"（表头写{'或'.join(others)}均可）" if len(others) > 1 else ""))
    text = "缺少必填列" + "、".join(said)
    if m["headers"]:
        text += (f"（第 {m['row']} 行的 {m['headers']} 个表头没有一个是{dataset_title(m['code']) or '该类数据'}的表头："
                 "这一行是表头吗？）")
    return text + "：请部门按约定的表头重新报送"


def _two_synonyms(m: re.Match, ds: Any) -> str:
    return (f"第 {m[1]} 列（{_header_title(m[2], ds)}）和第 {m[3]} 列（{_header_title(m[4], ds)}）都是"
            f"“{_column_title(m[5], ds)}”：请只保留一列")


def _duplicate_header(m: re.Match, ds: Any) -> str:
    return f"表头“{_header_title(m[1], ds)}”在第 {m[2]} 列和第 {m[3]} 列重复出现：请删去或改名其中一列"


def _several_datasets(m: re.Match, ds: Any) -> str:
    titles = [dataset_title(code) or name for name, code in re.findall(r"(\S+) \((\w+)\)", m[2])]
    return f"文件名同时含有几类数据的名称（{'、'.join(dict.fromkeys(titles))}）：请在文件名中只写一类数据的名称"


def _sheet_summary(part: str, ds: Any) -> str:
    """One sheet of readers._sheet_summary."""
    m = re.fullmatch(rf"sheet (?P<sheet>{_QUOTED}) is empty", part)
    if m:
        return f"工作表“{_unquoted(m['sheet'])}”是空的"
    m = re.fullmatch(rf"sheet (?P<sheet>{_QUOTED}): row (\d+) has (\d+) filled cell\(s\), none a \w+ header", part)
    if m:
        return f"工作表“{_unquoted(m['sheet'])}”第 {m[2]} 行有 {m[3]} 个单元格有内容，没有一个是表头"
    m = re.fullmatch(rf"sheet (?P<sheet>{_QUOTED}): row (\d+) holds (.+?)(?: and (\d+) other cell\(s\))?; lacks (.+)", part)
    if m:
        held = "、".join(_header_title(repr(h), ds) for h in m[3].split(", "))
        lacks = "、".join(f"“{_column_title(n, ds)}”" for n in re.findall(r"(\w+) \([^)]*\)", m[6]))
        return (f"工作表“{_unquoted(m['sheet'])}”第 {m[2]} 行有表头 {held}" + (f" 和另外 {m[5]} 个单元格" if m[5] else "")
                + f"，缺少 {lacks}")
    return ""


def _no_sheet(m: re.Match, ds: Any) -> str:
    from bidui.datasets import BY_CODE

    ds = BY_CODE.get(m[1], ds)
    sheets = [s for s in (_sheet_summary(p, ds) for p in m[2].split("; ")) if s]
    return (f"没有一个工作表的表头含有{dataset_title(m[1]) or '该类数据'}的全部必填列"
            + (f"（{'；'.join(sheets)}）" if sheets else "") + "：请把数据放在第 1 行是表头的工作表上")


def _in_sheet(m: re.Match, ds: Any) -> str:
    """A header problem of one sheet of a workbook (readers._locate_header's `sheet 'X': …`)."""
    said = _said(m["rest"], ds)
    return f"工作表“{_unquoted(m['sheet'])}”：" + (said if said else "表头有误")


def _value_shift(m: re.Match, ds: Any) -> str:
    """plausibility.checks: an enumeration value's share of rows moved."""
    col = next((c for c in ds.columns if c.name == m[1]), None) if ds else None
    value = col.display.get(m[3], m[3]) if col else m[3]
    return f"“{m[2]}”为“{value}”的行占 {m[4]}（{m[6]} 的版本中占 {m[5]}），变化超过允许幅度"


def _wide(m: re.Match, ds: Any) -> str:
    return f"文件是 {m[1]} 编码的文本，不能接收：请另存为 UTF-8 编码（Excel 中选“CSV UTF-8”）后重新报送"


def _columns_list(m: re.Match, ds: Any) -> str:
    names = "、".join(f"“{_header_title(h, ds)}”" for h in re.findall(_QUOTED, m[1]))
    return f"列 {names} 存的是列表、结构或二进制数据，不是普通的值：请只报送普通的列"


_NOT_A_FILE = {"a folder": "一个文件夹", "a FIFO (named pipe)": "一个命名管道", "a socket": "一个套接字",
               "a device": "一个设备文件", "not a plain file": "一个特殊文件"}
_ENCODINGS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "gb18030": "GB18030"}


_MESSAGES: list[tuple[str, Words]] = [
    # ---- no file, or the file's own outcome (bidui.connectors.ingest)
    (r"^no (\w+) file tonight; the snapshot of (\S+) stays in force$", "今晚没有{t1}文件，继续使用 {2} 的数据"),
    (r"^no (\w+) file tonight and none ever accepted \(optional dataset\)$", "今晚没有{t1}文件，此前也从未入库（可选数据）"),
    (r"^no (\w+) file tonight and none ever accepted$", "今晚没有{t1}文件，此前也从未入库"),
    (r"^the snapshot of (\S+) stays in force$", "继续使用 {1} 的数据"),
    (r"^stored by an earlier run of this night.*$", "本夜较早的一次运行已入库"),
    (r"^a transfer's temporary file, still being written.*$", "传输工具的临时文件，仍在写入；之后的运行会接收"),
    (r"^still being written \(it changed within the last (\S+) s, waited (\S+) s: max_wait_seconds\); the snapshot in "
     r"force stays; a later run of this night takes it once it has stopped changing$",
     "文件仍在写入（{1} 秒内还有变化，已等待 {2} 秒），已暂缓；现行数据不变，再次运行本夜时接收"),
    (r"^still being written \([^;]*\)$", "文件仍在写入，已暂缓；现行数据不变，再次运行本夜时接收"),
    (r"^a later run of this night takes it$", ""),  # (said with "still being written")
    (r"^two files for (\w+) tonight \(also (.+)\); send one$", "今晚有两个以上{t1}文件（另有 {2}），都未入库：请只报送一个"),
    (r"^two files for (\w+) tonight.*$", "今晚有两个以上{t1}文件，请只发送一个"),
    (r"^the same bytes as the (\w+) snapshot in force \((\S+),.*$", "与现行的 {2} {t1}数据完全相同，未重复入库"),
    (r"^to apply it anyway: .*$", "如与报送部门核实文件无误，可由管理员批准，下次比对时入库"),
    (r"^could not be read \(\w+\); check the file and send it again$", "文件内容异常，无法读取：请部门检查文件后重新报送"),
    (r"^could not be stored \(the (\w+) snapshot in force changed while it was read\); nothing of it was kept; "
     r"run the night again$", "未能保存：读取期间现行的{t1}数据发生了变化，本文件未入库；请重新运行本夜"),
    (r"^could not be stored \(.*\); nothing of it was kept$", "保存时出错，本文件未入库：请技术人员处理后重新运行本夜"),
    (r"^the ID column (.+) is stored as numbers \(.*\): IDs ending in X are lost; deliver ID numbers as text \(string\)$",
     lambda m, ds: f"证件号码列“{_header_title(m[1], ds)}”存成了数字：末位为 X 的证件号码已丢失，请把证件号码存为文本后重新报送"),
    # ---- what ingest did besides storing (ingest._notes)
    (r"^([\d,]+) exact duplicate row\(s\) collapsed$", "{1} 行完全重复，已合并"),
    (r"^([\d,]+) row\(s\) with a rejected value, kept with that value empty$", "{1} 行有不合规的值，该值置空后保留"),
    (rf"^first: row (?P<row>\d+), column (?P<column>\w+) \((?P<value>{_QUOTED}|\(empty\))\)[,:] (?P<why>.+)$", _first),
    (r"^first: row (?P<row>\d+)(?:, column (?P<column>\w+))?.*$", _first_loose),
    (r"^([\d,]+) row\(s\) without a usable ID number or name dropped$", "{1} 行没有可用的证件号码或姓名，已剔除"),
    # ---- held: what the checks add after their reasons (see _REASONS)
    (r"^still arriving or damaged in transfer$", ""),  # (said with the checksum)
    (r"^a transfer that stopped\? Resend it.*$", ""),  # (said with "the last record is cut")
    (r"^are the ID and name columns swapped, or IDs stored as numbers\?$", "请检查证件号码列和姓名列是否放反、证件号码是否存成了数字"),
    # ---- refused unread (bidui.connectors.inbox, bidui.datasets)
    (r"^a symbolic link, not a file; deliver the file itself$", "是一个快捷方式（符号链接），不是文件本身：请报送文件本身"),
    (r"^not a regular file \((.+)\); deliver a file$",
     lambda m, ds: f"是{_NOT_A_FILE.get(m[1], '一个特殊文件')}，不是普通文件：请把数据文件本身放进当晚的报送目录"),
    (rf"^file name (?:{_QUOTED}) names no dataset \(no code prefix, no Chinese name\)$",
     "文件名中没有约定的数据名称（如“户籍人口”“死亡医学证明”），无法判断是哪类数据：请按报送约定给文件命名后重新报送"),
    (rf"^file name ({_QUOTED}) matches several datasets: (.+)$", _several_datasets),
    # ---- cannot be read (bidui.connectors.readers)
    (r"^empty file$", "文件是空的（没有任何内容）：请部门重新导出后报送"),
    (r"^binary data, not a text table$", "文件内容是二进制数据，不是文本表格：请导出为 CSV 或 Excel 工作簿后重新报送"),
    (r"^has a UTF-8 byte-order mark but byte (\d+) is not UTF-8$",
     "文件开头标明是 UTF-8 编码，但第 {1} 字节处（从 0 数起）不是 UTF-8：文件可能被截断、损坏，或混入了其他编码的内容；"
     "请部门重新导出后报送"),
    (r"^neither UTF-8 nor GB18030/GBK \(undecodable byte at offset (\d+)\)$",
     "文件既不是 UTF-8 也不是 GB18030（国标）编码，第 {1} 字节处（从 0 数起）无法识别：文件可能被截断或损坏，"
     "或用了其他编码；请另存为 UTF-8 编码后重新报送"),
    (r"^Big5 \(Traditional Chinese\) text, which is not accepted; save it as UTF-8 \(in Excel: CSV UTF-8\)$",
     "文件是繁体中文编码（大五码），不能接收：请另存为 UTF-8 编码（Excel 中选“CSV UTF-8”）后重新报送"),
    (r"^not (\S+) at byte (\d+)$",
     lambda m, ds: f"第 {m[2]} 字节处（从 0 数起）不是 {_ENCODINGS.get(m[1], '此前使用的')} 编码，与此前报送的同一文件不一致："
                   "请部门重新导出后报送"),
    (r"^(UTF-(?:16|32)) \([^)]*\) text; save it as UTF-8 \(in Excel: CSV UTF-8\)$", _wide),
    (rf"^(?P<label>{_LABEL}) has (\d+) fields, the header has (\d+) \((?P<kind>tab|comma)-separated; (?P<loc>.+)\)$",
     lambda m, ds: f"{_row_words(m['label'])}有 {m[2]} 列，表头只有 {m[3]} 列（{_where_words(m['kind'], m['loc'])}）："
                   "多出的列可能是值里有逗号却没有加引号；请部门改正后重新报送"),
    (rf"^(?P<label>{_LABEL}): a quote inside a field that is not itself quoted; quote the field and double the quote "
     r"\(\"\"\) \((?P<kind>tab|comma)-separated; (?P<loc>.+)\)$",
     lambda m, ds: f"{_row_words(m['label'])}格式有误：一个值里有引号，这个值本身却没有用引号括起来；请把这个值用引号括起来，"
                   f"值里的引号写成两个（\"\"）（{_where_words(m['kind'], m['loc'])}）"),
    (rf"^(?P<label>{_LABEL}): (?P<cause>.+); quotes inside a field must be doubled \(\"\"\) "
     r"\((?P<kind>tab|comma)-separated; (?P<loc>.+)\)$", _quote_problem),
    (r"^not a well-formed (tab|comma)-separated table$",
     lambda m, ds: f"不是规范的{'制表符' if m[1] == 'tab' else '逗号'}分隔表格：请检查分隔符和引号后重新导出报送"),
    (r"^a header over two rows \(merged cells\), rows (\d+) and (\d+); put one header row, one name per column$",
     "表头占了两行（合并单元格），在第 {1} 行和第 {2} 行：表头只能有一行，每列一个列名"),
    (r"^the header is on row (\d+); row\(s\) above it look like a title or notes \(row (\d+) has (\d+) filled cells, "
     r"a title has one\); delete them so that the header is on row 1$",
     "表头在第 {1} 行，上面几行像是标题或说明（第 {2} 行有 {3} 个单元格有内容，标题只有一个）：请删掉这几行，让表头在第 1 行"),
    (rf"^sheet (?P<sheet>{_QUOTED}) cell (?P<cell>.+?) holds the Excel error value (?P<value>\S+), which cannot be read.*$",
     lambda m, ds: f"工作表“{_unquoted(m['sheet'])}”的"
                   + (f" {m['cell']} " if m["cell"] != "(no reference)" else "一个")
                   + f"单元格是 Excel 错误值 {m['value']}（公式的结果），无法读取：请部门把公式转为数值后重新报送"),
    (rf"^sheet (?P<sheet>{_QUOTED}): (?P<rest>.+)$", _in_sheet),
    (r"^the workbook expands to (\S+) GB, more than (\S+) GB; split it or send CSV$",
     "工作簿解压后有 {1} GB，超过 {2} GB 的上限：请拆分后报送，或改为报送 CSV 文件"),
    (r"^part .+ expands (\S+)-fold \(a zip bomb\?\); not read$", "工作簿中的一部分解压后膨胀 {1} 倍（可能是恶意文件），未读取"),
    (r"^a sheet declares ([\d,]+) rows × ([\d,]+) columns \(more than ([\d,]+) cells\); delete what lies outside the "
     r"table and save again$",
     "有一个工作表声明了 {1} 行 × {2} 列（超过 {3} 个单元格）：请删除表格以外的内容后重新保存报送"),
    (r"^part .+ is encrypted or compressed in a way Excel does not write; open it in Excel .*$",
     "工作簿中有内容被加密，或用 Excel 不使用的方式压缩：请用 Excel 打开后另存为 Excel 工作簿（.xlsx）再报送"),
    (r"^not a readable XLSX workbook \(a damaged zip archive\)$", "工作簿已损坏（压缩包损坏），无法读取：请部门重新导出后报送"),
    (r"^not a readable XLSX workbook: the zip archive has no end .*$",
     "工作簿不完整（文件在末尾被截断，复制或传输可能中断了），无法读取：请重新报送"),
    (r"^a password-protected workbook; remove the password .*$",
     "工作簿设了密码，无法读取：请在 Excel 中取消密码（文件 › 信息 › 保护工作簿）后另存为 .xlsx 再报送"),
    (r"^an Excel 97–2003 \.xls workbook named \.xlsx; .*$",
     "这是旧版 Excel 97-2003 工作簿，却以 .xlsx 命名：请在 Excel 中另存为“Excel 工作簿”（.xlsx）后报送"),
    (r"^not a readable XLSX workbook: the file is empty$", "文件是空的（没有任何内容）：请部门重新导出后报送"),
    (r"^not a readable XLSX workbook: an HTML page .*$",
     "这是一个网页文件（网页导出），却以 .xlsx 命名：请用 Excel 打开后另存为“Excel 工作簿”（.xlsx）再报送"),
    (r"^not a readable XLSX workbook: an XML file .*$",
     "这是 Excel 2003 格式的电子表格，却以 .xlsx 命名：请在 Excel 中另存为“Excel 工作簿”（.xlsx）后报送"),
    (r"^not a readable XLSX workbook: text \(a CSV file\?\) named \.xlsx; .*$",
     "这是一个文本文件（可能是 CSV），却以 .xlsx 命名：请改为 .csv 文件报送，或另存为“Excel 工作簿”（.xlsx）"),
    (r"^not a readable XLSX workbook: not a zip archive, .*$",
     "不是 Excel 工作簿（.xlsx 文件都是压缩包，这个文件不是）：请另存为“Excel 工作簿”（.xlsx）后报送"),
    (r"^not a readable XLSX workbook \(.*\)$", "工作簿已损坏或格式不对，无法读取：请用 Excel 打开后另存为“Excel 工作簿”（.xlsx）再报送"),
    (r"^no sheet has a header row \(every sheet is empty\)$", "工作簿的每个工作表都是空的：请部门重新导出后报送"),
    (r"^no sheet has a header row$", "没有一个工作表有表头行：请把表头放在第 1 行"),
    (r"^no sheet has a header with the required columns of (\w+): (.*); put the data on a sheet whose row 1 is the header$",
     _no_sheet),
    (r"^not a readable Parquet file .*$", "文件已损坏或格式不对，无法读取：请部门重新导出后报送"),
    (r"^the Parquet file expands to ([\d,]+) MB from ([\d,.]+) MB \(a decompression bomb\?\); not read$",
     "文件解压后有 {1} MB（原文件 {2} MB），膨胀异常（可能是恶意文件），未读取"),
    (r"^declares ([\d,]+) rows in ([\d,]+) KB \(repeated values: a decompression bomb\?\); not read$",
     "文件声称有 {1} 行，却只有 {2} KB（大量重复的值，可能是恶意文件），未读取"),
    (r"^column\(s\) (.+) hold lists, structs or binary data, not values; deliver plain columns$", _columns_list),
    (r"^a column cannot be read as text \(\w+\)$", "有一列无法读成文字：请把各列存为文字或数字后重新导出报送"),
    (r"^unsupported file type .*; send CSV, XLSX or Parquet$", "不支持这种文件类型：请报送 CSV 文件或 Excel 工作簿（.xlsx）"),
    # ---- headers (bidui.connectors.mapping)
    (r"^missing required column\(s\) for (?P<code>\w+): (?P<columns>.+?)(?: \(none of the (?P<headers>\d+) headers on "
     r"row (?P<row>\d+) is a \w+ header: is that row the header\?\))?$", _missing_columns),
    (rf"^duplicate header ({_QUOTED}) in columns (\d+) and (\d+)$", _duplicate_header),
    (rf"^columns (\d+) \(({_QUOTED})\) and (\d+) \(({_QUOTED})\) both mean (\w+)$", _two_synonyms),
]


# Why a file was held or refused, found anywhere in one part of its message (the checks of
# bidui.connectors.plausibility and ingest._whole word each in one sentence).
_REASONS: list[tuple[str, Words]] = [
    (r"a header but no data rows", "只有表头，没有数据行"),
    (r"([\d,]+) of ([\d,]+) rows are exact duplicate rows", "{1} 行中有 {0} 行完全重复"),
    (r"([\d,]+) of ([\d,]+) rows rejected \(([^,]+)", "{1} 行中有 {0} 行的值不合格（{2}），超过允许比例"),
    (r"the required column \S+ \(([^)]+)\) is empty in every row", "必填列“{0}”每一行都为空"),
    (r"only (\S+) of rows have a valid ID number.*?\(limit min_valid_id_share (\S+?)\)",
     "只有 {0} 的行证件号码有效（含被 Excel 截成15位的），低于下限 {1}"),
    (r"only (\S+) of rows have a valid ID number", "只有 {0} 的行证件号码有效，低于下限"),
    (r"([\d,]+) rows, fewer than (\S+) \(min_row_ratio\) of the ([\d,]+) rows of the snapshot of (\S+) ",
     "本期 {0} 行，不到 {3} 版本 {2} 行的 {1}（文件可能不完整）"),
    (r"([\d,]+) rows, fewer than (\S+) \(min_row_ratio\)", "本期 {0} 行，不到上期的 {1}"),
    (r"([\d,]+) rows, more than (\S+) \(max_row_ratio\) of the ([\d,]+) rows of the snapshot of (\S+) ",
     "本期 {0} 行，超过 {3} 版本 {2} 行的 {1}（可能重复报送）"),
    (r"([\d,]+) rows, more than (\S+) \(max_row_ratio\)", "本期 {0} 行，超过上期的 {1}"),
    (r"rows with a valid ID number .*?fell from (\S+) to (\S+?)[ ,;(]", "证件号码有效的行从 {0} 降到 {1}"),
    (r"distinct ID numbers per row fell from (\S+) to (\S+?)[ ,;(]", "不重复的证件号码占比从 {0} 降到 {1}"),
    (r"(\w+) \(([^)]+)\) = (.+?) in (\S+) of rows, (\S+) in the snapshot of (\S+)", _value_shift),
    (r"\S+ \(([^)]+)\) = (.+?) in (\S+) of rows, (\S+) in the", "“{0}”为“{1}”的行占 {2}（上期 {3}）"),
    (r"checksum .*does not match", "校验值与文件不符：可能仍在传输或已损坏"),
    (r"the last record is cut \(no line break ends the last record\)",
     "最后一行不完整（文件没有以换行结尾）：传输可能中断，请部门重新报送（文件以换行结尾，或附上校验值文件）"),
    (r"the last record is cut \(the file ends inside a quoted field, mid-record\)",
     "最后一行不完整（文件在一个带引号的值中间结束）：传输可能中断，请部门重新报送"),
    (r"the last record is cut \(the file ends inside a character, mid-record\)",
     "最后一行不完整（文件在一个字的中间结束）：传输可能中断，请部门重新报送"),
    (r"the last record is cut", "最后一行不完整：传输可能中断，请部门重新报送"),
    (r"the last ([\d,]+) rows of the snapshot of (\S+) are all missing tonight",
     "{1} 的版本最后 {0} 行今晚全都没有，而它们之前的行仍在：文件可能在某一行被截断，请部门核实后重新报送"),
    (r"could not be stored", "无法保存，未入库"),
]


def _words(words: Words, m: re.Match, ds: Any, groups: tuple) -> str:
    if callable(words):
        return words(m, ds)
    return re.sub(r"\{(t?)(\d)\}", lambda g: (dataset_title(groups[int(g[2]) - 1]) or "该类")
                  if g[1] else groups[int(g[2]) - 1], words)


def _reasons(text: str, ds: Any = None) -> list[str]:
    """The reasons found in one part of a message; the first pattern found of each reason (a more
    precise pattern before a looser one of the same sentence)."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    for pattern, words in _REASONS:
        m = re.search(pattern, text)
        if m and not any(a <= m.start() < b for a, b in spans):
            spans.append(m.span())
            out.append(words(m, ds) if callable(words) else words.format(*m.groups()))
    return out


def _said(part: str, ds: Any = None) -> str | None:
    """One message (or part) in Chinese; "" for a detail another part says; None when unknown."""
    for pattern, words in _MESSAGES:
        m = re.match(pattern, part)
        if m:
            return _words(words, m, ds, tuple(g or "" for g in m.groups()))
    return None


def _parts(text: str) -> list[str]:
    """The "; "-separated parts of a message, not splitting inside brackets (`(44.9%; truncated?)`)."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += (c in "(（") - (c in ")）")
        if depth <= 0 and text.startswith("; ", i):
            parts.append(text[start:i])
            start, depth = i + 2, 0
    return [p.strip() for p in [*parts, text[start:]] if p.strip()]


def file_message(file: str | None, status: str, message: str | None) -> str:
    """A file's load message (bidui.connectors.ingest, in English for the log) as the run report
    says it: in Chinese, without the file name the row already shows. A part no pattern knows is
    said by the file's status with the part itself (原文) beside it: a defect to fix here, and the
    engineer is not sent to a log a --plain run never wrote."""
    text = (message or "").strip()
    if file:
        text = text.replace(f"{file}: ", "")  # the row shows the file once; a message may name it twice
    forced = text.startswith("applied with --force: ")
    text = text.removeprefix("applied with --force: ")
    ds = _file_dataset(file)
    out: list[str] = []
    unknown: list[str] = []
    # The whole message first (some say "; " inside one sentence), then each of its parts.
    for part in [text] if _said(text, ds) is not None else _parts(text):
        said = _said(part, ds)
        if said is None:
            found = _reasons(part, ds)
            if found:
                out += found
            elif re.search(r"[A-Za-z]{3,}", part):
                unknown.append(part)
            else:
                out.append(part)
        elif said:
            out.append(said)
    if unknown:
        out.append(f"{FILE_STATUS_LABELS.get(status) or RUN_STATUS_LABELS.get(status, '其他')}（原文：{'; '.join(unknown)}）")
    return ("已强制入库：" if forced else "") + "；".join(dict.fromkeys(out))
