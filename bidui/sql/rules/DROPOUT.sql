-- code: DROPOUT
-- title: 义务教育阶段失学辍学
-- category: exit_risk
-- inputs: register_members, students
-- parameters: dropout_min_age, dropout_max_age
-- link: member
-- 规则含义：该成员在义务教育年龄段（默认 7 至 15 岁），学籍数据中却没有“在读”或“休学”的记录，可能失学辍学。
-- 入户核实要点：孩子现在在哪里：在外县市上学、上特殊教育学校、因病在家、接受送教上门，还是确实没有上学。
-- 属实·已整改：确已失学，已劝返复学或安排送教上门（控辍保学）。
-- 属实·申请豁免：因重病、重度残疾等暂不能入学的，按本地政策写明依据。
-- 不属实：孩子在读，学籍数据漏了或在外地就读；附学校出具的在读证明。
-- 留存佐证：在读证明、劝返记录。
-- A member of compulsory-school age has no student record that is 在读 or 休学 (any stage). The
-- evidence is the age and the student records the member has (school, type, stage, status), if any.
SELECT s.*, 'students' AS evidence_dataset, '' AS evidence_key, NULL::DATE AS evidence_date,
       json_object('age', s.age, 'school_records', (
           SELECT list(struct_pack(school_name := st.school_name, school_type := st.school_type, stage := st.stage,
                                   status := st.status) ORDER BY st.school_name, st.stage, st.status)
           FROM students_linked st WHERE st.ident = s.ident)) AS evidence_record, s.subject_link_method AS link_method,
       s.subject_link_score AS link_score, s.subject_link_explanation AS link_explanation
FROM subjects s
WHERE s.age BETWEEN $dropout_min_age AND $dropout_max_age
  AND NOT EXISTS (SELECT 1 FROM students_linked st WHERE st.ident = s.ident AND st.status IN ('在读', '休学'))
