-- code: DANGEROUS_HOUSE
-- title: 住房安全未保障
-- category: exit_risk
-- inputs: register_members, dangerous_housing
-- parameters: dangerous_grades
-- 规则含义：农村危房鉴定中，该成员住房最近一次的鉴定为 C 级或 D 级危房，且尚未改造完成（住房安全未保障）。
-- 入户核实要点：是否仍住在这处房屋里；改造是否在进行；是否已有其他安全住房。
-- 属实·已整改：仍住危房，已落实危房改造、安置或纳入监测。
-- 属实·申请豁免：已搬入其他安全住房、原房不再居住，写明现住何处。
-- 不属实：房屋已改造完成，或鉴定记录不是本户的；附改造验收材料。
-- 留存佐证：鉴定报告、改造验收材料；照片只在本地要求时留存。
-- A member's latest appraisal (by appraisal date) is an unsafe grade and not renovated (已改造).
SELECT s.*, 'dangerous_housing' AS evidence_dataset, strftime(l.appraisal_date, '%Y-%m-%d') AS evidence_key,
       l.appraisal_date AS evidence_date, to_json(l) AS evidence_record, l.link_method, l.link_score, l.link_explanation
FROM latest_appraisals l
JOIN subjects s ON s.ident = l.ident
WHERE list_contains($dangerous_grades, l.grade) AND l.renovated <> '已改造'
