-- code: URBAN_PROPERTY
-- title: 家庭成员在城镇购买商品房
-- category: mis_inclusion
-- inputs: register_members, property
-- parameters: property_region, property_counted_types
-- A member owns commercial housing in a town (not relocation, social or self-built housing).
SELECT s.*, 'property' AS evidence_dataset, p.cert_number AS evidence_key, p.register_date AS evidence_date,
       to_json(p) AS evidence_record, p.link_method, p.link_score, p.link_explanation
FROM counted_property p
JOIN subjects s ON s.ident = p.ident
