-- code: NOT_IN_HUKOU
-- title: 户籍查无此人
-- category: data_quality
-- inputs: register_members, hukou
-- parameters:
-- A member links to no hukou record, exactly or fuzzily (a link to confirm counts as a link).
SELECT s.*, 'hukou' AS evidence_dataset, '' AS evidence_key, NULL::DATE AS evidence_date,
       NULL AS evidence_record, s.subject_link_method AS link_method, s.subject_link_score AS link_score,
       s.subject_link_explanation AS link_explanation
FROM subjects s
WHERE s.subject_person_key IS NULL
