-- code: UNINSURED
-- title: 未参加基本医疗保险
-- category: exit_risk
-- inputs: register_members, medical_insurance
-- parameters:
-- dated: year
-- skip_unless: SELECT count(*) > 0 FROM (SELECT 1 FROM medical_insurance_linked WHERE year = year($run_date::DATE) LIMIT 1)
-- link: member
-- 规则含义：医保参保数据中没有该成员本年度状态为“参保”的记录。
-- 入户核实要点：是否在外地或以职工医保参保；是否新生儿或已去世；还是确实没有参保。
-- 属实·已整改：确未参保，已代缴或补缴参保。
-- 属实·申请豁免：已去世、新生儿正在办理等，写明情况。
-- 不属实：在外地或以其他方式已参保；附参保凭证。
-- 留存佐证：参保凭证。
-- A member has no record with status 参保 for the run date's year in the snapshot in force.
SELECT s.*, 'medical_insurance' AS evidence_dataset, CAST(year($run_date::DATE) AS VARCHAR) AS evidence_key,
       NULL::DATE AS evidence_date, NULL AS evidence_record, s.subject_link_method AS link_method,
       s.subject_link_score AS link_score, s.subject_link_explanation AS link_explanation
FROM subjects s
WHERE NOT EXISTS (SELECT 1 FROM medical_insurance_linked i
                  WHERE i.ident = s.ident AND i.year = year($run_date::DATE) AND i.status = '参保')
