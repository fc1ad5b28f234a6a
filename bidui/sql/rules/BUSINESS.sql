-- code: BUSINESS
-- title: 家庭成员经营企业或个体工商户
-- category: mis_inclusion
-- inputs: register_members, businesses
-- parameters: business_active_statuses, business_not_enterprise, individual_business_min_capital
-- 规则含义：市场监管部门的登记显示，该成员是一家存续企业的法定代表人或投资人，或经营注册资本达到门槛（按本地政策，默认 10
--    万元）的个体工商户。农民专业合作社不计入。
-- 入户核实要点：企业是否真实经营（营业执照、年报、纳税情况）；成员的实际角色，是否只是挂名；从中得到的收入；登记时间。
-- 属实·已整改：确有经营收入，家庭条件不符合，已清退出列或按本地政策处理。
-- 属实·申请豁免：在扶贫车间务工、小额经营等，按本地政策可不清退的，写明依据。
-- 不属实：挂名或长期停业未注销并有证明（请督促办理注销），或登记的不是本人。
-- 留存佐证：市场监管部门查询结果、税务证明、注销回执。
-- A member is legal representative or investor of an active enterprise, or operates an active
-- individual business with registered capital at the threshold (万元) or above.
SELECT s.*, 'businesses' AS evidence_dataset, b.credit_code AS evidence_key, b.established_date AS evidence_date,
       b.evidence_record, b.link_method, b.link_score, b.link_explanation
FROM counted_business_people b
JOIN subjects s ON s.ident = b.ident
