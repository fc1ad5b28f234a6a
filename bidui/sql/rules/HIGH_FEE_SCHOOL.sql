-- code: HIGH_FEE_SCHOOL
-- title: 子女就读高收费学校
-- category: mis_inclusion
-- inputs: register_members, students
-- parameters: school_fee_threshold, school_fee_types
-- 规则含义：学籍数据显示，该成员在一所民办学校就读，年学费达到门槛（按本地政策，默认 2 万元）。
-- 入户核实要点：就读学校和实际缴纳的学费；是否有奖学金、减免或资助；学费由谁支付。
-- 属实·已整改：家庭确有支付能力，已清退出列或按本地政策处理。
-- 属实·申请豁免：学费已减免，或由资助方、他人支付，写明依据。
-- 不属实：学生不在该校就读或收费信息有误，或不是本人；附学校证明。
-- 留存佐证：学校收费证明、资助证明。
-- A member is enrolled (在读) at a private school whose annual fee is at the threshold or above.
SELECT s.*, 'students' AS evidence_dataset, st.school_name AS evidence_key, NULL::DATE AS evidence_date,
       to_json(st) AS evidence_record, st.link_method, st.link_score, st.link_explanation
FROM students_linked st
JOIN subjects s ON s.ident = st.ident
WHERE st.status = '在读' AND list_contains($school_fee_types, st.school_type)
  AND coalesce(st.annual_fee, 0) >= $school_fee_threshold
