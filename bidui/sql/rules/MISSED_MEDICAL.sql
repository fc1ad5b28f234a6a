-- code: MISSED_MEDICAL
-- title: 疑似漏评：大额医疗
-- category: missed_inclusion
-- inputs: hukou, divisions, medical_claims, vehicles, businesses, property
-- parameters: missed_medical_threshold, medical_window_days
-- dated: medical_claims.settle_date within medical_window_days days, year
-- link: member
-- 规则含义：一个不在建档立卡名单中的农村户籍户，成员在比对日前一年内结算的医疗费用中个人自付合计达到门槛（按本地政策，默认 2
--    万元），疑似漏评。这户不在名单里：请按户籍户号和户主姓名找人。
-- 入户核实要点：家庭收入、报销情况、债务，疾病是否仍在持续。
-- 属实·已整改：有致贫返贫风险，已纳入监测、落实医疗救助或新识别纳入。
-- 属实·申请豁免：有风险但已由其他保障覆盖，写明依据。
-- 不属实：家庭收入稳定、条件较好，不符合条件；写明核实情况。
-- 留存佐证：入户调查表、医疗费用结算单。
-- A candidate household's members' out-of-pocket costs in the window sum to the threshold or more.
-- The evidence lists the bills behind the total (date, patient, hospital, amounts) and the window's length.
-- The bills are listed only for the households that reach the threshold (a list for every
-- household with a bill cost 2 s of the large night's rules).
WITH bills AS (
    SELECT c.hukou_number, m.settle_date, m.name, m.hospital, m.total_cost, m.out_of_pocket, m.source_row
    FROM medical_claims_linked m JOIN missed_candidates c ON c.ident = m.ident
    WHERE m.settle_date > $run_date::DATE - to_days($medical_window_days) AND m.settle_date <= $run_date::DATE
),
reached AS (
    -- summed exactly, as HIGH_MEDICAL_COST does
    SELECT hukou_number, sum(out_of_pocket::DECIMAL(38, 6)) AS total FROM bills GROUP BY hukou_number
    HAVING sum(out_of_pocket::DECIMAL(38, 6)) >= $missed_medical_threshold - 1e-6
),
totals AS (
    SELECT r.hukou_number, any_value(r.total) AS total,
           list(struct_pack(settle_date := b.settle_date, name := b.name, hospital := b.hospital,
                            total_cost := round(b.total_cost, 2), out_of_pocket := round(b.out_of_pocket, 2))
                ORDER BY b.settle_date, b.name, b.hospital, b.total_cost, b.out_of_pocket) AS bills
    FROM bills b JOIN reached r ON r.hukou_number = b.hukou_number
    GROUP BY r.hukou_number
)
SELECT s.*, 'medical_claims' AS evidence_dataset, CAST(year($run_date::DATE) AS VARCHAR) AS evidence_key,
       NULL::DATE AS evidence_date, json_object('household_total', round(t.total::DOUBLE, 2), 'window_days', $medical_window_days,
                                            'bills', t.bills) AS evidence_record,
       NULL AS link_method, NULL::DOUBLE AS link_score, NULL AS link_explanation
FROM totals t JOIN missed_subjects s ON s.hukou_number = t.hukou_number
