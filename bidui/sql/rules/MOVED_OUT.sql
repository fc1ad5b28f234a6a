-- code: MOVED_OUT
-- title: 户籍已迁出
-- category: natural_change
-- inputs: register_members, hukou
-- parameters:
-- 规则含义：户籍登记显示该成员的户口已迁出，但他仍在建档立卡名单中。
-- 入户核实要点：迁往何处、为什么迁；本人是否仍与本户共同生活。
-- 属实·已整改：已长期迁走、不再是本户成员，已按自然减少办理。
-- 属实·申请豁免：因上学、务工等迁出户口但仍是本户成员，按本地政策保留的，写明依据。
-- 不属实：迁出记录有误或不是本人；写明核对过的证件。
-- 留存佐证：迁移证明、村委会证明。
-- The evidence is the member's own hukou record: the link is the member's to hukou.
SELECT s.*, 'hukou' AS evidence_dataset, coalesce(strftime(h.status_date, '%Y-%m-%d'), '') AS evidence_key,
       h.status_date AS evidence_date, to_json(h) AS evidence_record, s.subject_link_method AS link_method,
       s.subject_link_score AS link_score, s.subject_link_explanation AS link_explanation
FROM hukou h
JOIN subjects s ON s.ident = h.ident
WHERE h.status = '迁出' AND h.is_primary
