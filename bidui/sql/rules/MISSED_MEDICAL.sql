-- code: MISSED_MEDICAL
-- title: 疑似漏评：大额医疗
-- category: missed_inclusion
-- inputs: hukou, divisions, medical_claims, vehicles, businesses, property
-- parameters: missed_medical_threshold, medical_window_days
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
WITH totals AS (
    SELECT c.hukou_number, sum(m.out_of_pocket) AS total,
           list(struct_pack(settle_date := m.settle_date, name := m.name, hospital := m.hospital,
                            total_cost := round(m.total_cost, 2), out_of_pocket := round(m.out_of_pocket, 2))
                ORDER BY m.settle_date, m.name, m.source_row) AS bills
    FROM medical_claims_linked m JOIN missed_candidates c ON c.ident = m.ident
    WHERE m.settle_date > $run_date::DATE - to_days($medical_window_days) AND m.settle_date <= $run_date::DATE
    GROUP BY c.hukou_number HAVING sum(m.out_of_pocket) >= $missed_medical_threshold - 1e-6
)
SELECT s.*, 'medical_claims' AS evidence_dataset, CAST(year($run_date::DATE) AS VARCHAR) AS evidence_key,
       NULL::DATE AS evidence_date, json_object('household_total', round(t.total, 2), 'window_days', $medical_window_days,
                                            'bills', t.bills) AS evidence_record,
       NULL AS link_method, NULL::DOUBLE AS link_score, NULL AS link_explanation
FROM totals t JOIN missed_subjects s ON s.hukou_number = t.hukou_number
