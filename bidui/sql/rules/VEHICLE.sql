-- code: VEHICLE
-- title: 家庭成员拥有机动车
-- category: mis_inclusion
-- inputs: register_members, vehicles
-- parameters: vehicle_active_statuses, vehicle_counted_types, vehicle_excluded_uses
-- A member owns a counted vehicle (see _disqualifiers.sql) whose status keeps it in use.
SELECT s.*, 'vehicles' AS evidence_dataset, v.plate AS evidence_key, v.register_date AS evidence_date,
       to_json(v) AS evidence_record, v.link_method, v.link_score, v.link_explanation
FROM counted_vehicles v
JOIN subjects s ON s.ident = v.ident
