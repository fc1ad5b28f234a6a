-- Shared views (files starting with "_" define views, not rules): what disqualifies a household.
-- Used by the mis_inclusion rules for members and by the missed_inclusion rules for hukou households.
-- parameters: vehicle_active_statuses, vehicle_counted_types, vehicle_excluded_uses, business_active_statuses,
--             business_not_enterprise, individual_business_min_capital, property_region, property_counted_types

CREATE OR REPLACE TEMP TABLE counted_vehicles AS
SELECT v.* FROM vehicles_linked v
WHERE list_contains($vehicle_active_statuses, v.status)
  AND NOT list_contains($vehicle_excluded_uses, coalesce(v.use_nature, ''))
  AND (list_contains($vehicle_counted_types, substr(v.vehicle_type_code, 1, 1))
       OR list_contains($vehicle_counted_types, substr(v.vehicle_type_code, 1, 2)));

CREATE OR REPLACE TEMP TABLE active_enterprises AS
SELECT b.* FROM businesses_linked b
WHERE list_contains($business_active_statuses, b.status) AND NOT list_contains($business_not_enterprise, b.entity_type);

-- Who a counted business names: enterprise legal representatives and investors, and operators of
-- individual businesses with at least the minimum registered capital. Cooperatives never count.
CREATE OR REPLACE TEMP TABLE counted_business_people AS
SELECT e.credit_code, e.ident, e.established_date, e.link_method, e.link_score, e.link_explanation,
       to_json(e) AS evidence_record
FROM active_enterprises e
UNION ALL
SELECT b.credit_code, b.ident, b.established_date, b.link_method, b.link_score, b.link_explanation, to_json(b)
FROM businesses_linked b
WHERE list_contains($business_active_statuses, b.status) AND b.entity_type = '个体工商户'
  AND coalesce(b.registered_capital, 0) >= $individual_business_min_capital
UNION ALL
SELECT i.credit_code, i.ident, e.established_date, i.link_method, i.link_score, i.link_explanation, to_json(i)
FROM business_investors_linked i JOIN active_enterprises e ON e.credit_code = i.credit_code;

CREATE OR REPLACE TEMP TABLE counted_property AS
SELECT p.* FROM property_linked p
WHERE p.region_type = $property_region AND list_contains($property_counted_types, p.house_type);
