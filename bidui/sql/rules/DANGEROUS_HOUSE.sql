-- code: DANGEROUS_HOUSE
-- title: 住房安全未保障
-- category: exit_risk
-- inputs: register_members, dangerous_housing
-- parameters: dangerous_grades
-- A member's latest appraisal (by appraisal date) is an unsafe grade and not renovated (已改造).
SELECT s.*, 'dangerous_housing' AS evidence_dataset, strftime(l.appraisal_date, '%Y-%m-%d') AS evidence_key,
       l.appraisal_date AS evidence_date, to_json(l) AS evidence_record, l.link_method, l.link_score, l.link_explanation
FROM latest_appraisals l
JOIN subjects s ON s.ident = l.ident
WHERE list_contains($dangerous_grades, l.grade) AND l.renovated <> '已改造'
