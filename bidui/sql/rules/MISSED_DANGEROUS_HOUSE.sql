-- code: MISSED_DANGEROUS_HOUSE
-- title: 疑似漏评：危房
-- category: missed_inclusion
-- inputs: hukou, divisions, dangerous_housing, vehicles, businesses, property
-- parameters: missed_dangerous_grades
-- A member of a candidate household (see _missed_households.sql) has, at the latest appraisal,
-- a D-grade house that is not renovated.
SELECT s.*, 'dangerous_housing' AS evidence_dataset, strftime(l.appraisal_date, '%Y-%m-%d') AS evidence_key,
       l.appraisal_date AS evidence_date, to_json(l) AS evidence_record, l.link_method, l.link_score, l.link_explanation
FROM latest_appraisals l
JOIN missed_candidates c ON c.ident = l.ident
JOIN missed_subjects s ON s.hukou_number = c.hukou_number
WHERE list_contains($missed_dangerous_grades, l.grade) AND l.renovated <> '已改造'
