"""The extract specification (shared/extract-spec.md) as data: the one place that knows every
dataset's code, Chinese names, columns, header synonyms and enumerations.

The synthetic prefecture writes from it and the connectors read by it, so a header synonym or
an enumeration value is added here once.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["text", "id", "name", "code", "date", "year", "money", "number", "enum"]


@dataclass(frozen=True)
class Column:
    name: str
    header: str
    synonyms: tuple[str, ...] = ()
    required: bool = False
    kind: Kind = "text"
    values: tuple[str, ...] = ()  # canonical enumeration values
    aliases: dict[str, str] = field(default_factory=dict)  # other spellings → canonical
    # How a value reads to a person (bidui.clues.present): its unit (元, 万元, m²) and the words for
    # a stored code (a GA 802 vehicle code, a division level).
    unit: str = ""
    display: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> tuple[str, ...]:
        """Every accepted header form: Chinese, synonyms, canonical English name."""
        return (self.header, *self.synonyms, self.name)


@dataclass(frozen=True)
class PersonRef:
    """Where a dataset names a person: its ID and name columns and the person's role."""

    id_column: str
    name_column: str
    role: str


@dataclass(frozen=True)
class Dataset:
    code: str
    title: str
    chinese_names: tuple[str, ...]
    columns: tuple[Column, ...]
    department: str
    persons: tuple[PersonRef, ...] = ()
    optional: bool = False
    # Columns without which a row is about nothing (besides the person's ID or name): a row whose key
    # value is unreadable is dropped; any other unreadable value only becomes null.
    keys: tuple[str, ...] = ()
    # What a row is about, to tell a changed row from a new one between two deliveries (the run
    # report's 变更): by default its keys, else the person's ID number.
    identity: tuple[str, ...] = ()

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.code} has no column {name}")

    @property
    def row_identity(self) -> tuple[str, ...]:
        return self.identity or self.keys or tuple(p.id_column for p in self.persons)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)


def _c(name: str, header: str, *synonyms: str, req: bool = False, kind: Kind = "text",
      values: tuple[str, ...] = (), aliases: dict[str, str] | None = None, unit: str = "",
      display: dict[str, str] | None = None) -> Column:
    return Column(name, header, tuple(synonyms), req, kind, values, aliases or {}, unit, display or {})


# GA 802 vehicle type names the departments write instead of codes (shared/rules.md).
VEHICLE_TYPE_NAMES: dict[str, str] = {
    "小型轿车": "K33", "小型普通客车": "K31", "微型普通客车": "K41", "轻型普通货车": "H31",
    "中型普通货车": "H21", "重型半挂牵引车": "Q11", "轮式装载机械": "J11", "微型普通货车": "H41",
    "低速货车": "H51", "普通二轮摩托车": "M21", "三轮汽车": "N11", "小型方向盘式拖拉机": "T21",
    "手扶拖拉机": "T22", "重型普通货车": "H11", "大型普通客车": "K11", "中型普通客车": "K21",
    "重型普通半挂车": "B11", "小型专用汽车": "Z51", "普通正三轮摩托车": "M11",
}

# GA 802 codes in words: the names above, and for a code not among them the class its first one or
# two characters name (a person reads 轻型普通货车, never H31).
VEHICLE_TYPE_WORDS: dict[str, str] = {code: name for name, code in VEHICLE_TYPE_NAMES.items()}
VEHICLE_CLASS_WORDS: dict[str, str] = {
    "K1": "大型客车", "K2": "中型客车", "K3": "小型客车", "K4": "微型客车", "H1": "重型货车", "H2": "中型货车",
    "H3": "轻型货车", "H4": "微型货车", "H5": "低速货车", "Q": "半挂牵引车", "Z": "专项作业车", "J": "轮式机械",
    "M": "摩托车", "N": "三轮汽车", "T": "拖拉机", "G": "挂车", "B": "半挂车", "D": "电车", "X": "其他车辆",
}


def vehicle_type_words(code: str) -> str:
    """A GA 802 code as a person says it: its name, else its class."""
    code = code.strip().upper()
    if code in VEHICLE_TYPE_WORDS:
        return VEHICLE_TYPE_WORDS[code]
    return VEHICLE_CLASS_WORDS.get(code[:2]) or VEHICLE_CLASS_WORDS.get(code[:1]) or code


YES_NO_SEX = ("男", "女")
DATASETS: tuple[Dataset, ...] = (
    Dataset("divisions", "行政区划", ("行政区划", "区划代码"), (
        _c("code", "区划代码", "代码", "统计用区划代码", req=True, kind="code"),
        _c("name", "名称", "区划名称", req=True),
        _c("level", "级别", "层级", req=True, kind="enum", values=("county", "township", "village"),
          display={"county": "县（区）", "township": "乡镇（街道）", "village": "村（社区）"},
          aliases={"县": "county", "区": "county", "市": "county", "乡": "township",
                   "镇": "township", "街道": "township", "村": "village", "社区": "village"}),
        _c("parent_code", "上级区划代码", "上级代码", req=True, kind="code"),
        _c("urban_rural", "城乡分类", "城乡属性", kind="enum", values=("城镇", "乡村")),
    ), "statistics", identity=("code",)),
    Dataset("register_households", "建档立卡贫困户", ("贫困户", "建档立卡户", "脱贫户"), (
        _c("household_code", "户编号", "户编码", "家庭编号", req=True),
        _c("village_code", "村代码", "所在村代码", "行政村代码", req=True, kind="code"),
        _c("head_name", "户主姓名", "户主", req=True, kind="name"),
        _c("head_id_number", "户主证件号码", "户主身份证号", req=True, kind="id"),
        _c("status", "脱贫状态", "贫困户状态", req=True, kind="enum", values=("未脱贫", "已脱贫")),
        _c("exit_year", "脱贫年度", "脱贫年份", kind="year"),
        _c("household_type", "贫困户属性", "户类型", kind="enum",
          values=("一般贫困户", "低保贫困户", "特困供养贫困户")),
        _c("main_cause", "主要致贫原因", "致贫原因", kind="enum", values=(
            "因病", "因残", "因学", "因灾", "缺土地", "缺水", "缺技术", "缺劳力", "缺资金",
            "交通条件落后", "自身发展动力不足")),
        _c("registered_year", "识别年度", "纳入年度", kind="year"),
    ), "poverty alleviation", (PersonRef("head_id_number", "head_name", "head"),), keys=("household_code",)),
    Dataset("register_members", "贫困户家庭成员", ("家庭成员", "贫困人口"), (
        _c("household_code", "户编号", "户编码", req=True),
        _c("name", "姓名", "成员姓名", req=True, kind="name"),
        _c("id_number", "证件号码", "身份证号", "身份证号码", "公民身份号码", req=True, kind="id"),
        _c("relation", "与户主关系", "关系", req=True),
        _c("sex", "性别", kind="enum", values=YES_NO_SEX),
        _c("birth_date", "出生日期", kind="date"),
        _c("health_status", "健康状况", kind="enum", values=("健康", "长期慢性病", "患有大病", "残疾")),
    ), "poverty alleviation", (PersonRef("id_number", "name", "member"),), keys=("household_code",),
       identity=("household_code", "id_number")),
    Dataset("hukou", "户籍人口", ("户籍", "常住人口", "人口信息"), (
        _c("id_number", "公民身份号码", "身份证号", "证件号码", req=True, kind="id"),
        _c("name", "姓名", req=True, kind="name"),
        _c("sex", "性别", kind="enum", values=YES_NO_SEX),
        _c("birth_date", "出生日期", kind="date"),
        _c("hukou_number", "户号", req=True),
        _c("relation", "与户主关系"),
        _c("address_code", "户籍地址代码", "住址区划代码", req=True, kind="code"),
        _c("hukou_type", "户口性质", kind="enum", values=("农业", "非农业", "居民")),
        _c("status", "人员状态", "户籍状态", req=True, kind="enum", values=("正常", "死亡", "迁出", "注销")),
        _c("status_date", "状态日期", "注销日期", kind="date"),
    ), "public security", (PersonRef("id_number", "name", "resident"),)),
    Dataset("hukou_changes", "户籍变动", ("户籍变动", "变动记录"), (
        _c("id_number", "公民身份号码", "身份证号", req=True, kind="id"),
        _c("name", "姓名", req=True, kind="name"),
        _c("change_type", "变动类型", req=True, kind="enum",
          values=("分户", "迁入", "迁出", "死亡注销", "农转非", "出生登记")),
        _c("change_date", "变动日期", req=True, kind="date"),
        _c("from_hukou_number", "原户号"),
        _c("to_hukou_number", "现户号", "新户号"),
    ), "public security", (PersonRef("id_number", "name", "subject"),),
       identity=("id_number", "change_type", "change_date")),
    Dataset("deaths", "死亡医学证明", ("死亡", "死亡证明"), (
        _c("id_number", "证件号码", "身份证号", req=True, kind="id"),
        _c("name", "姓名", "死者姓名", req=True, kind="name"),
        _c("death_date", "死亡日期", req=True, kind="date"),
    ), "health", (PersonRef("id_number", "name", "deceased"),)),
    Dataset("medical_insurance", "基本医疗保险参保", ("参保", "医保参保"), (
        _c("id_number", "证件号码", "身份证号", req=True, kind="id"),
        _c("name", "姓名", req=True, kind="name"),
        _c("year", "参保年度", req=True, kind="year"),
        _c("status", "参保状态", req=True, kind="enum", values=("参保", "未参保", "中断")),
    ), "medical security", (PersonRef("id_number", "name", "insured"),), identity=("id_number", "year")),
    Dataset("medical_claims", "医疗费用结算", ("医疗费用", "结算"), (
        _c("id_number", "证件号码", "身份证号", req=True, kind="id"),
        _c("name", "姓名", "患者姓名", req=True, kind="name"),
        _c("settle_date", "结算日期", req=True, kind="date"),
        _c("total_cost", "医疗总费用", "总费用", req=True, kind="money", unit="元"),
        _c("out_of_pocket", "个人自付", "自付金额", req=True, kind="money", unit="元"),
        _c("hospital", "医疗机构"),
    ), "medical security", (PersonRef("id_number", "name", "patient"),),
       identity=("id_number", "settle_date", "hospital")),
    Dataset("students", "学籍", ("学籍", "在校生"), (
        _c("id_number", "身份证号", "证件号码", req=True, kind="id"),
        _c("name", "姓名", "学生姓名", req=True, kind="name"),
        _c("school_name", "学校名称", req=True),
        _c("school_type", "办学类型", kind="enum", values=("公办", "民办")),
        _c("stage", "学段", req=True, kind="enum",
          values=("学前", "小学", "初中", "高中", "中职", "高职", "本科", "研究生")),
        _c("status", "学籍状态", req=True, kind="enum", values=("在读", "休学", "辍学", "毕业", "转出")),
        _c("annual_fee", "年学费", "学费", kind="money", unit="元"),
    ), "education", (PersonRef("id_number", "name", "student"),), identity=("id_number", "school_name")),
    Dataset("property", "不动产登记", ("不动产", "房产", "房屋登记"), (
        _c("owner_id_number", "权利人证件号码", "权利人身份证号", req=True, kind="id"),
        _c("owner_name", "权利人", "权利人姓名", req=True, kind="name"),
        _c("cert_number", "不动产权证号", "产权证号", req=True),
        _c("location", "坐落"),
        _c("region_type", "所在区域", req=True, kind="enum", values=("城镇", "乡村")),
        _c("usage", "用途", kind="enum", values=("住宅", "商业", "办公", "其他")),
        _c("house_type", "房屋性质", req=True, kind="enum", values=("商品房", "自建房", "安置房", "保障房")),
        _c("area", "建筑面积", kind="number", unit="m²"),
        _c("register_date", "登记日期", kind="date"),
    ), "housing", (PersonRef("owner_id_number", "owner_name", "owner"),), identity=("cert_number",)),
    Dataset("dangerous_housing", "农村危房鉴定", ("危房", "危房鉴定"), (
        _c("owner_id_number", "户主证件号码", "证件号码", "身份证号", req=True, kind="id"),
        _c("owner_name", "户主姓名", "姓名", req=True, kind="name"),
        _c("village_code", "村代码", kind="code"),
        _c("grade", "鉴定等级", "危险等级", req=True, kind="enum", values=("A", "B", "C", "D"),
          aliases={"A级": "A", "B级": "B", "C级": "C", "D级": "D"},
          display={"A": "A级", "B": "B级", "C": "C级（局部危险）", "D": "D级（整体危险）"}),
        _c("appraisal_date", "鉴定日期", req=True, kind="date"),
        _c("renovated", "改造状态", req=True, kind="enum", values=("未改造", "改造中", "已改造")),
    ), "housing", (PersonRef("owner_id_number", "owner_name", "owner"),)),
    Dataset("businesses", "市场主体", ("市场主体", "企业登记", "工商登记", "个体工商户"), (
        _c("credit_code", "统一社会信用代码", "注册号", req=True),
        _c("entity_name", "主体名称", "企业名称", "字号名称", req=True),
        _c("entity_type", "主体类型", "企业类型", req=True, kind="enum", values=(
            "有限责任公司", "股份有限公司", "个人独资企业", "合伙企业", "个体工商户", "农民专业合作社")),
        _c("legal_rep_name", "法定代表人", "经营者", "负责人", req=True, kind="name"),
        _c("legal_rep_id_number", "法定代表人证件号码", "经营者身份证号", req=True, kind="id"),
        _c("registered_capital", "注册资本", "资金数额", kind="money", unit="万元"),
        _c("established_date", "成立日期", kind="date"),
        _c("status", "登记状态", "经营状态", req=True, kind="enum", values=("存续", "在业", "注销", "吊销")),
    ), "commerce", (PersonRef("legal_rep_id_number", "legal_rep_name", "legal_rep"),),
       identity=("credit_code",)),
    Dataset("business_investors", "市场主体投资人", ("投资人", "股东"), (
        _c("credit_code", "统一社会信用代码", req=True),
        _c("investor_name", "投资人", "股东名称", req=True, kind="name"),
        _c("investor_id_number", "投资人证件号码", "股东证件号码", req=True, kind="id"),
        _c("subscribed_capital", "认缴出资额", kind="money", unit="万元"),
    ), "commerce", (PersonRef("investor_id_number", "investor_name", "investor"),),
       identity=("credit_code", "investor_id_number")),
    Dataset("vehicles", "机动车登记", ("机动车", "车辆"), (
        _c("plate", "号牌号码", "车牌号", req=True),
        _c("use_nature", "使用性质"),
        _c("vehicle_type", "车辆类型", req=True, display=VEHICLE_TYPE_WORDS),
        _c("owner_name", "机动车所有人", "所有人", "车主姓名", req=True, kind="name"),
        _c("owner_id_number", "所有人证件号码", "身份证明号码", "车主身份证号", req=True, kind="id"),
        _c("register_date", "初次登记日期", "登记日期", kind="date"),
        _c("status", "机动车状态", "状态", req=True, kind="enum",
          values=("正常", "转出", "注销", "报废", "查封", "逾期未检验")),
    ), "public security (traffic)", (PersonRef("owner_id_number", "owner_name", "owner"),), identity=("plate",)),
    Dataset("payroll", "财政供养人员", ("财政供养", "工资统发"), (
        _c("id_number", "证件号码", "身份证号", req=True, kind="id"),
        _c("name", "姓名", req=True, kind="name"),
        _c("employer", "工作单位", "单位名称", req=True),
        _c("staff_type", "编制类型", "人员类别"),
    ), "finance / human resources", (PersonRef("id_number", "name", "staff"),), optional=True,
       identity=("id_number", "employer")),
)

BY_CODE: dict[str, Dataset] = {d.code: d for d in DATASETS}



def header_key(text: str) -> str:
    """Header as compared: NFKC (full→half width), no spaces, lower case, no bracketed unit."""
    text = unicodedata.normalize("NFKC", str(text)).strip().lower()
    text = re.sub(r"[(\[（【][^)\]）】]*[)\]）】]", "", text)
    return re.sub(r"\s+", "", text)


_CODE_PREFIX = re.compile(r"^([a-z_]+?)(?=[_\-.0-9])")


class DatasetNameError(ValueError):
    pass


def dataset_for_filename(filename: str) -> Dataset:
    """Recognise a file's dataset from its name (shared/extract-spec.md, Delivery).

    A code prefix followed by `_`, `-`, `.` or a digit (the longer code wins), else exactly one
    dataset whose Chinese name the file name contains. A Chinese name contained in a longer
    matching one of another dataset (户籍 in 户籍变动) is read as the longer one.
    """
    base = filename.rsplit("/", 1)[-1]
    lower = base.lower()
    by_code = [d for d in DATASETS if re.match(re.escape(d.code) + r"[_\-.0-9]", lower)]
    if by_code:
        return max(by_code, key=lambda d: len(d.code))
    hits: list[tuple[str, Dataset]] = [
        (cn, d) for d in DATASETS for cn in d.chinese_names if cn in base
    ]
    hits = [
        (cn, d) for cn, d in hits
        if not any(cn != other and cn in other and od is not d for other, od in hits)
    ]
    found = {d.code: d for _, d in hits}
    if not found:
        raise DatasetNameError(f"file name {base!r} names no dataset (no code prefix, no Chinese name)")
    if len(found) > 1:
        names = ", ".join(sorted(f"{cn} ({d.code})" for cn, d in hits))
        raise DatasetNameError(f"file name {base!r} matches several datasets: {names}")
    return next(iter(found.values()))


def dataset_named(filename: str) -> Dataset | None:
    """`dataset_for_filename`, or None for a name that names no dataset."""
    try:
        return dataset_for_filename(filename)
    except DatasetNameError:
        return None
