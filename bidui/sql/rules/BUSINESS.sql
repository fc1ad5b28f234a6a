-- code: BUSINESS
-- title: 家庭成员经营企业或个体工商户
-- category: mis_inclusion
-- inputs: register_members, businesses
-- parameters: business_active_statuses, business_not_enterprise, individual_business_min_capital
-- A member is legal representative or investor of an active enterprise, or operates an active
-- individual business with registered capital at the threshold (万元) or above.
SELECT s.*, 'businesses' AS evidence_dataset, b.credit_code AS evidence_key, b.established_date AS evidence_date,
       b.evidence_record, b.link_method, b.link_score, b.link_explanation
FROM counted_business_people b
JOIN subjects s ON s.ident = b.ident
