-- code: MISSED_DANGEROUS_HOUSE
-- title: 疑似漏评：危房
-- category: missed_inclusion
-- inputs: hukou, divisions, dangerous_housing, vehicles, businesses, property
-- parameters: missed_dangerous_grades
-- 规则含义：一个不在建档立卡名单中的农村户籍户，有成员的住房最近一次鉴定为 D
--    级危房且未改造（疑似漏评）。这户不在名单里：请按户籍户号和户主姓名找人。
-- 入户核实要点：对照“两不愁三保障”，了解家庭收入和资产、是否有其他住房、危房改造进展。
-- 属实·已整改：符合条件，已新识别纳入或纳入监测。
-- 属实·申请豁免：暂不符合识别条件、危房正在改造等，写明依据。
-- 不属实：家庭条件不符合识别条件，或已有安全住房；写明核实情况。
-- 留存佐证：入户调查表、评议公示材料。
-- A member of a candidate household (see _missed_households.sql) has, at the latest appraisal,
-- a D-grade house that is not renovated.
SELECT s.*, 'dangerous_housing' AS evidence_dataset, strftime(l.appraisal_date, '%Y-%m-%d') AS evidence_key,
       l.appraisal_date AS evidence_date, to_json(l) AS evidence_record, l.link_method, l.link_score, l.link_explanation
FROM latest_appraisals l
JOIN missed_candidates c ON c.ident = l.ident
JOIN missed_subjects s ON s.hukou_number = c.hukou_number
WHERE list_contains($missed_dangerous_grades, l.grade) AND l.renovated <> '已改造'
