-- code: HIGH_FEE_SCHOOL
-- title: 子女就读高收费学校
-- category: mis_inclusion
-- inputs: register_members, students
-- parameters: school_fee_threshold, school_fee_types
-- A member is enrolled (在读) at a private school whose annual fee is at the threshold or above.
SELECT s.*, 'students' AS evidence_dataset, st.school_name AS evidence_key, NULL::DATE AS evidence_date,
       to_json(st) AS evidence_record, st.link_method, st.link_score, st.link_explanation
FROM students_linked st
JOIN subjects s ON s.ident = st.ident
WHERE st.status = '在读' AND list_contains($school_fee_types, st.school_type)
  AND coalesce(st.annual_fee, 0) >= $school_fee_threshold
