-- code: DROPOUT
-- title: 义务教育阶段失学辍学
-- category: exit_risk
-- inputs: register_members, students
-- parameters: dropout_min_age, dropout_max_age
-- A member of compulsory-school age has no student record that is 在读 or 休学 (any stage).
SELECT s.*, 'students' AS evidence_dataset, '' AS evidence_key, NULL::DATE AS evidence_date,
       json_object('age', s.age) AS evidence_record, s.subject_link_method AS link_method,
       s.subject_link_score AS link_score, s.subject_link_explanation AS link_explanation
FROM subjects s
WHERE s.age BETWEEN $dropout_min_age AND $dropout_max_age
  AND NOT EXISTS (SELECT 1 FROM students_linked st WHERE st.ident = s.ident AND st.status IN ('在读', '休学'))
