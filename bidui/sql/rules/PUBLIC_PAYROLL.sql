-- code: PUBLIC_PAYROLL
-- title: 家庭成员为财政供养人员
-- category: mis_inclusion
-- inputs: register_members, payroll
-- parameters:
-- A member is on the public payroll.
SELECT s.*, 'payroll' AS evidence_dataset, p.employer AS evidence_key, NULL::DATE AS evidence_date,
       to_json(p) AS evidence_record, p.link_method, p.link_score, p.link_explanation
FROM payroll_linked p
JOIN subjects s ON s.ident = p.ident
