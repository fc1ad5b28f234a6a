-- code: VEHICLE
-- title: 家庭成员拥有机动车
-- category: mis_inclusion
-- inputs: register_members, vehicles
-- parameters: vehicle_active_statuses, vehicle_counted_types, vehicle_excluded_uses
-- 规则含义：公安交管部门的机动车登记显示，该成员名下有一辆仍在使用状态（正常、查封或逾期未检验）的计入车辆（客车、货车、工程机械、牵
--    引车等；不含摩托车、三轮汽车、低速货车、微型货车、拖拉机和残疾人专用车）。拥有此类车辆的家庭是否符合条件，按本地政策认定。
-- 入户核实要点：车辆是否仍登记在本人名下（可向车管所查询状态）；是否本户所有、实际在用；何时购买（识别前还是脱贫后）；车辆用途和大致价值。
-- 属实·已整改：车辆为本户所有并在用，家庭条件不符合，已清退出列或按本地政策处理。
-- 属实·申请豁免：脱贫后购买、用于生产经营且家庭收入稳定等，按本地政策可不清退的，写明依据。
-- 不属实：车辆早已转让或报废只是未注销（请督促注销），或登记的不是本人；写明核对过的材料。
-- 留存佐证：车管所查询结果、转让协议或报废证明。
-- A member owns a counted vehicle (see _disqualifiers.sql) whose status keeps it in use.
SELECT s.*, 'vehicles' AS evidence_dataset, v.plate AS evidence_key, v.register_date AS evidence_date,
       to_json(v) AS evidence_record, v.link_method, v.link_score, v.link_explanation
FROM counted_vehicles v
JOIN subjects s ON s.ident = v.ident
