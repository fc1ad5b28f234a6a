-- code: MOVED_OUT
-- title: 户籍已迁出
-- category: natural_change
-- inputs: register_members, hukou
-- parameters:
SELECT s.*, 'hukou' AS evidence_dataset, coalesce(strftime(h.status_date, '%Y-%m-%d'), '') AS evidence_key,
       h.status_date AS evidence_date, to_json(h) AS evidence_record, h.link_method, h.link_score, h.link_explanation
FROM hukou h
JOIN subjects s ON s.ident = h.ident
WHERE h.status = '迁出' AND h.is_primary
