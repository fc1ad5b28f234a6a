-- code: NAME_MISMATCH
-- title: 姓名与户籍不一致
-- category: data_quality
-- inputs: register_members, hukou
-- parameters:
-- 规则含义：同一个证件号码，建档立卡名单上的姓名与户籍登记的姓名不同（同音字、形近字、用“*”代替的字都算，需要更正）。
-- 入户核实要点：以户口簿和身份证为准，确认哪一个姓名是对的。
-- 属实·已整改：名单中的姓名有误，已更正（数据已更正）。
-- 属实·申请豁免：户籍登记的姓名有误的，写明已告知公安部门更正。
-- 不属实：两处姓名其实一致；写明核对结果，由县级核查。
-- 留存佐证：户口簿。
-- A member's valid ID is a hukou ID, but the names differ beyond form (spaces, width, traditional
-- characters, middle dots): a homophone, a look-alike or a `*` is a mismatch to correct.
SELECT * EXCLUDE (rn) FROM (
    SELECT m.*, 'hukou' AS evidence_dataset, h.name AS evidence_key, NULL::DATE AS evidence_date,
           to_json(h) AS evidence_record, 'exact' AS link_method, 1.0 AS link_score, NULL AS link_explanation,
           row_number() OVER (PARTITION BY m.subject_key, h.name ORDER BY m.household_code, m.source_row) AS rn
    FROM member_subjects m
    JOIN register_members_linked r ON r.household_code = m.household_code AND r.source_row = m.source_row
    -- that person's record with that number (one, if hukou lists the person twice under it)
    JOIN hukou_person h ON h.id_number = r.id_number AND h.ident = r.ident
    LEFT JOIN name_keys km ON km.name = r.name
    LEFT JOIN name_keys kh ON kh.name = h.name
    -- names written alike have one key: comparing them first spares the keys' lookup and the
    -- record's JSON for the 370,000 members whose names agree (1.4 s to 0.5 s at the large size)
    WHERE r.id_number_status = 'valid' AND r.name <> h.name AND coalesce(km.simplified, r.name) <> coalesce(kh.simplified, h.name))
WHERE rn = 1
