-- code: HIGH_MEDICAL_COST
-- title: 大额医疗自付
-- category: exit_risk
-- inputs: register_members, medical_claims
-- parameters: medical_household_threshold, medical_window_days
-- The household's members' out-of-pocket costs settled in the window up to the run date sum to the
-- threshold or more. One clue per household; the subject is the member with the largest share.
WITH claims AS (
    SELECT c.ident, sum(c.out_of_pocket) AS oop
    FROM medical_claims_linked c
    WHERE c.settle_date > $run_date::DATE - to_days($medical_window_days) AND c.settle_date <= $run_date::DATE
      AND c.ident IS NOT NULL
    GROUP BY c.ident
),
per_member AS (
    SELECT m.*, c.oop FROM member_subjects m JOIN claims c ON c.ident = m.ident
),
households AS (
    SELECT household_code, sum(oop) AS total FROM per_member GROUP BY household_code
    HAVING sum(oop) >= $medical_household_threshold - 1e-6
)
SELECT * EXCLUDE (rn, oop, total) FROM (
    SELECT p.*, h.total, 'medical_claims' AS evidence_dataset, CAST(year($run_date::DATE) AS VARCHAR) AS evidence_key,
           NULL::DATE AS evidence_date, json_object('household_total', round(h.total, 2), 'member_share', round(p.oop, 2))
           AS evidence_record, p.subject_link_method AS link_method, p.subject_link_score AS link_score,
           p.subject_link_explanation AS link_explanation,
           row_number() OVER (PARTITION BY p.household_code ORDER BY p.oop DESC, p.source_row) AS rn
    FROM per_member p JOIN households h ON h.household_code = p.household_code)
WHERE rn = 1
