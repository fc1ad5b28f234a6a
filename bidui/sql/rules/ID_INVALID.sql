-- code: ID_INVALID
-- title: 证件号码错误
-- category: data_quality
-- inputs: register_members
-- parameters:
-- A member's ID fails length, province, birth date or check character after normalisation (an
-- Excel float is this case too). The evidence names the probable correct ID where linkage found
-- the person.
SELECT * EXCLUDE (rn) FROM (
    SELECT m.* REPLACE (trim(m.subject_id_number_raw) AS subject_id_number),
           'register_members' AS evidence_dataset, trim(m.subject_id_number_raw) AS evidence_key,
           NULL::DATE AS evidence_date,
           json_object('status', m.subject_id_status, 'probable_id', m.subject_person_key) AS evidence_record,
           m.subject_link_method AS link_method, m.subject_link_score AS link_score,
           m.subject_link_explanation AS link_explanation,
           row_number() OVER (PARTITION BY m.subject_key, trim(m.subject_id_number_raw)
                              ORDER BY m.household_code, m.source_row) AS rn
    FROM member_subjects m WHERE m.subject_id_status <> 'valid')
WHERE rn = 1
