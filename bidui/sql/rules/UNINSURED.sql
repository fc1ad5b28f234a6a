-- code: UNINSURED
-- title: 未参加基本医疗保险
-- category: exit_risk
-- inputs: register_members, medical_insurance
-- parameters:
-- skip_unless: SELECT count(*) > 0 FROM medical_insurance_linked WHERE year = year($run_date::DATE)
-- A member has no record with status 参保 for the run date's year in the snapshot in force.
SELECT s.*, 'medical_insurance' AS evidence_dataset, CAST(year($run_date::DATE) AS VARCHAR) AS evidence_key,
       NULL::DATE AS evidence_date, NULL AS evidence_record, s.subject_link_method AS link_method,
       s.subject_link_score AS link_score, s.subject_link_explanation AS link_explanation
FROM subjects s
WHERE NOT EXISTS (SELECT 1 FROM medical_insurance_linked i
                  WHERE i.ident = s.ident AND i.year = year($run_date::DATE) AND i.status = '参保')
