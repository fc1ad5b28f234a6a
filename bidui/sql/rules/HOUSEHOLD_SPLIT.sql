-- code: HOUSEHOLD_SPLIT
-- title: 分户争贫疑点
-- category: mis_inclusion
-- inputs: register_members, hukou, hukou_changes
-- parameters: split_min_age, split_years
-- dated: hukou_changes.change_date within split_years years
-- 规则含义：该户全部成员年龄都在门槛以上（按本地政策，默认 60 岁），近几年内（默认 5
--    年）有成员从一个不在建档立卡名单中的户籍户分户出来：可能是老人单独立户以享受政策（分户争贫）。
-- 入户核实要点：老人的子女是谁、住在哪里、是否有赡养能力并尽到赡养义务；分户的时间和原因；老人是否独立生活。
-- 属实·已整改：为享受政策而分户、子女有赡养能力，已合户认定或清退出列。
-- 属实·申请豁免：确实分开生活且子女无力赡养，写明原因。
-- 不属实：分户记录不是本户成员的，或分户另有正当原因且与识别无关，写明情况。
-- 留存佐证：户籍变动记录、赡养情况说明、村组评议意见。
-- Every member of the register household is aged split_min_age or over, and one of them split off
-- (分户) within split_years before the run date from a hukou household with no register member.
-- One clue per register household; the subject is its head.
WITH all_old AS (
    SELECT household_code FROM member_subjects GROUP BY household_code
    HAVING bool_and(coalesce(age, -1) >= $split_min_age)
),
-- (registered_hukou, of bidui.rules.views: the hukou households with a register member's living record)
splits AS (
    SELECT c.* FROM hukou_changes_linked c
    WHERE c.change_type = '分户' AND c.change_date > $run_date::DATE - to_years($split_years)
      AND c.change_date <= $run_date::DATE
      AND c.from_hukou_number NOT IN (SELECT hukou_number FROM registered_hukou WHERE hukou_number IS NOT NULL)
),
heads AS (
    SELECT * EXCLUDE (rn) FROM (
        SELECT *, row_number() OVER (PARTITION BY household_code ORDER BY relation <> '户主', source_row) AS rn
        FROM member_subjects) WHERE rn = 1
)
SELECT h.*, 'hukou_changes' AS evidence_dataset, sp.from_hukou_number AS evidence_key, sp.change_date AS evidence_date,
       to_json(sp) AS evidence_record, sp.link_method, sp.link_score, sp.link_explanation
FROM splits sp
JOIN member_subjects m ON m.ident = sp.ident
JOIN all_old o ON o.household_code = m.household_code
JOIN heads h ON h.household_code = m.household_code
