-- code: HIGH_MEDICAL_COST
-- title: 大额医疗自付
-- category: exit_risk
-- inputs: register_members, medical_claims
-- parameters: medical_household_threshold, medical_window_days
-- dated: medical_claims.settle_date within medical_window_days days, year
-- link: member
-- 规则含义：该户成员在比对日前一年内（默认 365 天）结算的医疗费用中，个人自付合计达到门槛（按本地政策，默认 1
--    万元），有因病返贫的风险。
-- 入户核实要点：得了什么病、是否还在治疗；大病保险、医疗救助是否已报销；家庭现在的收入和生活状况。
-- 属实·已整改：有返贫风险，已纳入监测、落实医疗救助等。
-- 属实·申请豁免：已由救助覆盖、家庭生活稳定，写明依据。
-- 不属实：结算记录不是本户成员的，或金额有误；附结算单。
-- 留存佐证：医疗费用结算单、救助凭证。
-- The household's members' out-of-pocket costs settled in the window up to the run date sum to the
-- threshold or more. One clue per household; the subject is the member with the largest share.
-- The evidence lists the bills behind the total (date, patient, hospital, amounts) and the window's length.
WITH bills AS (
    SELECT c.* FROM medical_claims_linked c
    WHERE c.settle_date > $run_date::DATE - to_days($medical_window_days) AND c.settle_date <= $run_date::DATE
      AND c.ident IS NOT NULL
),
-- Summed exactly (to the cent and below): a sum of doubles depends on how DuckDB's threads split
-- it, and two members with equal totals would then be told apart by the last bit.
claims AS (SELECT ident, sum(out_of_pocket::DECIMAL(38, 6)) AS oop FROM bills GROUP BY ident),
per_member AS (
    SELECT m.*, c.oop FROM member_subjects m JOIN claims c ON c.ident = m.ident
),
households AS (
    SELECT household_code, sum(oop) AS total FROM per_member GROUP BY household_code
    HAVING sum(oop) >= $medical_household_threshold - 1e-6
),
household_bills AS (
    SELECT m.household_code,
           list(struct_pack(settle_date := b.settle_date, name := b.name, hospital := b.hospital,
                            total_cost := round(b.total_cost, 2), out_of_pocket := round(b.out_of_pocket, 2))
                ORDER BY b.settle_date, b.name, b.hospital, b.total_cost, b.out_of_pocket) AS bills
    -- only the households that reach the threshold: a list for every household with a bill cost more
    FROM (SELECT DISTINCT p.household_code, p.ident FROM per_member p SEMI JOIN households h ON h.household_code = p.household_code) m
    JOIN bills b ON b.ident = m.ident
    GROUP BY m.household_code
)
SELECT * EXCLUDE (rn, oop, total) FROM (
    SELECT p.*, h.total, 'medical_claims' AS evidence_dataset, CAST(year($run_date::DATE) AS VARCHAR) AS evidence_key,
           NULL::DATE AS evidence_date, json_object('household_total', round(h.total::DOUBLE, 2), 'member_share', round(p.oop::DOUBLE, 2),
                                          'window_days', $medical_window_days, 'bills', hb.bills) AS evidence_record, p.subject_link_method AS link_method, p.subject_link_score AS link_score,
           p.subject_link_explanation AS link_explanation,
           row_number() OVER (PARTITION BY p.household_code ORDER BY p.oop DESC, p.source_row) AS rn
    FROM per_member p JOIN households h ON h.household_code = p.household_code
    LEFT JOIN household_bills hb ON hb.household_code = p.household_code)
WHERE rn = 1
