-- code: URBAN_PROPERTY
-- title: 家庭成员在城镇购买商品房
-- category: mis_inclusion
-- inputs: register_members, property
-- parameters: property_region, property_counted_types
-- 规则含义：不动产登记显示，该成员在城镇拥有商品房（不含安置房、保障房、自建房）。
-- 入户核实要点：房产是否属本人（不动产权证）；何时、以何种方式购买（全款或按揭）；自住还是出租；是否其实是安置房或保障房被登记成了商品房。
-- 属实·已整改：本户购买的商品房，家庭条件不符合，已清退出列或按本地政策处理。
-- 属实·申请豁免：继承所得或脱贫后购买等，按本地政策可不清退的，写明依据。
-- 不属实：实为安置房或保障房、登记有误（请住建部门更正），或不是本人的房产。
-- 留存佐证：不动产权证、安置协议、购房合同。
-- A member owns commercial housing in a town (not relocation, social or self-built housing).
SELECT s.*, 'property' AS evidence_dataset, p.cert_number AS evidence_key, p.register_date AS evidence_date,
       to_json(p) AS evidence_record, p.link_method, p.link_score, p.link_explanation
FROM counted_property p
JOIN subjects s ON s.ident = p.ident
