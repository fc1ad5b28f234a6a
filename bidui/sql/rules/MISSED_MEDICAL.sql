-- code: MISSED_MEDICAL
-- title: 疑似漏评：大额医疗
-- category: missed_inclusion
-- inputs: hukou, divisions, medical_claims, vehicles, businesses, property
-- parameters: missed_medical_threshold, medical_window_days
-- A candidate household's members' out-of-pocket costs in the window sum to the threshold or more.
WITH totals AS (
    SELECT c.hukou_number, sum(m.out_of_pocket) AS total
    FROM medical_claims_linked m JOIN missed_candidates c ON c.ident = m.ident
    WHERE m.settle_date > $run_date::DATE - to_days($medical_window_days) AND m.settle_date <= $run_date::DATE
    GROUP BY c.hukou_number HAVING sum(m.out_of_pocket) >= $missed_medical_threshold - 1e-6
)
SELECT s.*, 'medical_claims' AS evidence_dataset, CAST(year($run_date::DATE) AS VARCHAR) AS evidence_key,
       NULL::DATE AS evidence_date, json_object('household_total', round(t.total, 2)) AS evidence_record,
       'exact' AS link_method, NULL::DOUBLE AS link_score, NULL AS link_explanation
FROM totals t JOIN missed_subjects s ON s.hukou_number = t.hukou_number
