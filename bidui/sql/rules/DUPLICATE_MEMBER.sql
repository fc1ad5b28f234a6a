-- code: DUPLICATE_MEMBER
-- title: 一人多户
-- category: data_quality
-- inputs: register_members
-- parameters:
-- The same person in two or more register households, or twice in one: one clue for each
-- household, the evidence key naming the other household codes (sorted, joined by ";").
WITH rows_per AS (
    SELECT subject_key, household_code, count(*) AS n FROM member_subjects
    WHERE ident IS NOT NULL GROUP BY subject_key, household_code
),
people AS (SELECT subject_key FROM rows_per GROUP BY subject_key HAVING sum(n) >= 2),
others AS (
    SELECT a.subject_key, a.household_code,
           array_to_string(list_sort(list(DISTINCT b.household_code)), ';') AS other_codes
    FROM rows_per a JOIN rows_per b ON a.subject_key = b.subject_key
         AND (b.household_code <> a.household_code OR b.n >= 2)
    WHERE a.subject_key IN (SELECT subject_key FROM people)
    GROUP BY a.subject_key, a.household_code
),
first_row AS (
    SELECT * EXCLUDE (rn) FROM (
        SELECT *, row_number() OVER (PARTITION BY subject_key, household_code ORDER BY source_row) AS rn
        FROM member_subjects) WHERE rn = 1
)
SELECT f.*, 'register_members' AS evidence_dataset, o.other_codes AS evidence_key, NULL::DATE AS evidence_date,
       json_object('other_households', o.other_codes) AS evidence_record, f.subject_link_method AS link_method,
       f.subject_link_score AS link_score, f.subject_link_explanation AS link_explanation
FROM others o JOIN first_row f ON f.subject_key = o.subject_key AND f.household_code = o.household_code
