from __future__ import annotations

import pytest

from bidui.datasets import BY_CODE, DATASETS, DatasetNameError, dataset_for_filename, header_key
from bidui.names import clean_name, form_key, pinyin_key


@pytest.mark.parametrize("dot", ["\u00b7", "\u2022", "\u30fb", "\u2027", "\uff0e", "."])
def test_every_middle_dot_variant_becomes_one(dot: str) -> None:
    assert clean_name(f"阿不都{dot}热合曼") == "阿不都·热合曼"


def test_form_key_normalises_form_only() -> None:
    assert form_key(" 張 偉 ") == "张伟"
    assert form_key("ＡＢ") == "AB"
    assert form_key("汪伟") != form_key("王伟")  # a homophone stays a different writing
    assert form_key("李*兰") != form_key("李秀兰")


@pytest.mark.parametrize(("name", "key"), [("单雄信", "shanxiongxin"), ("曾国藩", "zengguofan"),
                                           ("仇英", "qiuying"), ("解缙", "xiejin"), ("区永", "ouyong")])
def test_pinyin_reads_surnames_as_surnames(name: str, key: str) -> None:
    assert pinyin_key(name) == key


@pytest.mark.parametrize(
    ("filename", "code"),
    [("vehicles_20261120.csv", "vehicles"), ("vehicles.xlsx", "vehicles"), ("hukou_changes_1120.csv", "hukou_changes"),
     ("hukou-2026.csv", "hukou"), ("机动车登记信息（11月）.xlsx", "vehicles"), ("户籍变动记录.csv", "hukou_changes"),
     ("人口信息.csv", "hukou"), ("payroll2026.parquet", "payroll")],
)
def test_dataset_from_file_name(filename: str, code: str) -> None:
    assert dataset_for_filename(filename).code == code


@pytest.mark.parametrize("filename", ["foo.csv", "贫困户家庭成员.csv", "市场主体投资人.csv", "vehiclesx.csv"])
def test_file_names_matching_none_or_two_are_refused(filename: str) -> None:
    with pytest.raises(DatasetNameError):
        dataset_for_filename(filename)


def test_header_key_ignores_width_space_case_and_units() -> None:
    assert header_key("注册资本（万元）") == header_key("注册资本") == header_key(" 注册资本 (万元)")
    assert header_key("Ｉｄ_Number") == "id_number"


def test_registry_matches_the_spec() -> None:
    assert len(DATASETS) == 15 and BY_CODE["payroll"].optional
    for ds in DATASETS:
        keys = [header_key(h) for c in ds.columns for h in c.headers]
        # within a dataset, no header form may mean two columns
        for c in ds.columns:
            for h in c.headers:
                owners = {o.name for o in ds.columns if header_key(h) in map(header_key, o.headers)}
                assert owners == {c.name}, (ds.code, h, owners)
        assert keys


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

NAME_ALPHABET = "王李张伟秀英阿不都热合曼·•・‧．. \u3000\t張偉ＡＢ*()（）户主[]【】□?〓yan\u200b"


@given(st.lists(st.text(alphabet=NAME_ALPHABET, max_size=8), min_size=1, max_size=30))
def test_vectorised_name_cleaning_agrees(values: list[str]) -> None:
    import polars as pl

    from bidui.names import clean_name_expr
    from bidui.text import nfkc_series

    out = pl.DataFrame({"v": nfkc_series(pl.Series(values, dtype=pl.String))}).select(clean_name_expr(pl.col("v")))
    assert out.to_series().to_list() == [clean_name(v) for v in values]


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e"])
def test_invisible_characters_are_a_difference_of_form(invisible: str) -> None:
    import polars as pl

    from bidui.names import clean_name_expr

    name = f"{invisible}张{invisible}三{invisible}"
    assert clean_name(name) == "张三" == pl.select(clean_name_expr(pl.lit(name))).item()
    assert form_key(name) == form_key("张三")


@pytest.mark.parametrize(("written", "clean"), [
    ("张三(户主)", "张三"), ("李四（已故）", "李四"), ("王五【迁出】", "王五"), ("赵六[注销]", "赵六"),
    ("李□兰", "李*兰"), ("李?兰", "李*兰"), ("李？兰", "李*兰"), ("李〓兰", "李*兰"), ("李＊兰", "李*兰"),
    ("\u3000张三 ", "张三"), ("张\u200b三", "张三"), ("王yan", "王yan"), ("李〇", "李〇"),
])
def test_names_as_other_systems_write_them(written: str, clean: str) -> None:
    """Annotations and invisible characters are removed in the one place for names; every
    placeholder becomes the one `*` (an unknown character, still not the name)."""
    assert clean_name(written) == clean
    assert form_key(written) == form_key(clean)


def test_pinyin_written_for_a_character_reads_as_its_sound() -> None:
    assert pinyin_key("王yan") == pinyin_key("王燕") == "wangyan"
    assert pinyin_key("王Yan") == "wangyan"
    assert pinyin_key("李*兰") == "lilan"  # a placeholder has no sound


def test_text_nfkc_leaves_as_it_is_is_each_its_own_nfkc() -> None:
    """`nfkc_series` skips the values of ASCII and CJK Unified Ideographs alone: each of those
    characters must be its own NFKC (the compatibility ideographs and radicals are not)."""
    import unicodedata

    changed = [hex(c) for c in (*range(0x80), *range(0x4E00, 0xA000)) if unicodedata.normalize("NFKC", chr(c)) != chr(c)]
    assert changed == []
    assert unicodedata.normalize("NFKC", "\uf900") != "\uf900" and unicodedata.normalize("NFKC", "\u2f00") != "\u2f00"


# (characters this Python's Unicode assigns: polars' NFKC knows a later version, 99 code points more)
@given(st.lists(st.one_of(st.text(st.characters(exclude_categories=("Cs", "Cn")), max_size=6),
                          st.text(alphabet="王李Aa1 ·\u0301\u3000Ｘ\uf900\u2f00\u4e00\u9fff\x00é", max_size=6)),
                min_size=1, max_size=30))
def test_vectorised_nfkc_agrees_with_pythons(values: list[str]) -> None:
    import unicodedata

    import polars as pl

    from bidui.text import nfkc_series

    assert nfkc_series(pl.Series(values, dtype=pl.String)).to_list() == [unicodedata.normalize("NFKC", v) for v in values]
