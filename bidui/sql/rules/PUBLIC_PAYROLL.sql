-- code: PUBLIC_PAYROLL
-- title: 家庭成员为财政供养人员
-- category: mis_inclusion
-- inputs: register_members, payroll
-- parameters:
-- 规则含义：财政供养人员名单（由财政发放工资的人员）中有该成员。
-- 入户核实要点：工作单位和岗位（在编、聘用还是公益性岗位）；从何时开始；工资收入。
-- 属实·已整改：家中有在编财政供养人员，家庭条件不符合，已清退出列或按本地政策处理。
-- 属实·申请豁免：公益性岗位或临时岗位，按本地政策不计入的，写明依据。
-- 不属实：名单上的是同名的他人，不是本人；写明核对过的证件。
-- 留存佐证：单位证明、工资明细。
-- A member is on the public payroll.
SELECT s.*, 'payroll' AS evidence_dataset, p.employer AS evidence_key, NULL::DATE AS evidence_date,
       to_json(p) AS evidence_record, p.link_method, p.link_score, p.link_explanation
FROM payroll_linked p
JOIN subjects s ON s.ident = p.ident
