-- code: DUPLICATE_MEMBER
-- title: 一人多户
-- category: data_quality
-- inputs: register_members
-- parameters:
-- link: member
-- 规则含义：同一个人在两个以上建档立卡户中都登记为成员，或在同一户中登记了两次。
-- 入户核实要点：本人实际属于哪一户、与哪一户共同生活；与另一户所在的村或乡镇核对。
-- 属实·已整改：已从不属于的户中删除，或删除重复的一条（数据已更正）。
-- 属实·申请豁免：一般不适用；确有特殊情况的写明。
-- 不属实：两条记录不是同一个人；写明核对过的证件。
-- 留存佐证：户籍证明、村组说明。
-- The same person in two or more register households, or twice in one: one clue for each
-- household, the evidence key naming the other household codes (sorted, joined by ";"; the own code
-- when the person is twice in it). The evidence names the other households (code, village, head),
-- never the clue's own, and how many times the person is in the clue's household.
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
other_households AS (
    SELECT a.subject_key, a.household_code,
           list(struct_pack(household_code := b.household_code, village_code := h.village_code,
                            head_name := h.head_name) ORDER BY b.household_code) AS households
    FROM rows_per a JOIN rows_per b ON a.subject_key = b.subject_key AND b.household_code <> a.household_code
    LEFT JOIN register_households_linked h ON h.household_code = b.household_code
    GROUP BY a.subject_key, a.household_code
),
first_row AS (
    SELECT * EXCLUDE (rn) FROM (
        SELECT *, row_number() OVER (PARTITION BY subject_key, household_code ORDER BY source_row) AS rn
        FROM member_subjects) WHERE rn = 1
)
SELECT f.*, 'register_members' AS evidence_dataset, o.other_codes AS evidence_key, NULL::DATE AS evidence_date,
       json_object('other_households', coalesce(x.households, []), 'times_in_household', r.n) AS evidence_record,
       f.subject_link_method AS link_method, f.subject_link_score AS link_score,
       f.subject_link_explanation AS link_explanation
FROM others o JOIN first_row f ON f.subject_key = o.subject_key AND f.household_code = o.household_code
JOIN rows_per r ON r.subject_key = o.subject_key AND r.household_code = o.household_code
LEFT JOIN other_households x ON x.subject_key = o.subject_key AND x.household_code = o.household_code
