-- Shared views: hukou households that may have been missed (漏评). Living members (status 正常) of
-- households in villages classed 乡村, none of whose members is a register member or has a
-- counted vehicle, a counted business, urban commercial property, or public payroll.
-- parameters:

-- Only the columns the missed-inclusion rules read: this holds most of the hukou. (The households
-- with a disqualified member are found from hukou's ident and household number alone: the living
-- rows with all their columns, read twice, were a copy of most of the hukou, 0.3 s at the large size.)
CREATE OR REPLACE TEMP TABLE missed_candidates AS
WITH disqualified AS (
    SELECT ident FROM registered_persons
    UNION SELECT ident FROM counted_vehicles WHERE ident IS NOT NULL
    UNION SELECT ident FROM counted_business_people WHERE ident IS NOT NULL
    UNION SELECT ident FROM counted_property WHERE ident IS NOT NULL
    UNION SELECT ident FROM payroll_linked WHERE ident IS NOT NULL
),
bad AS (SELECT DISTINCT h.hukou_number FROM hukou h SEMI JOIN disqualified d ON d.ident = h.ident WHERE h.status = '正常')
SELECT h.ident, h.hukou_number, h.address_code, h.id_number, h.id_number_raw, h.name, h.relation, h.birth_date
FROM hukou h
SEMI JOIN divisions_linked v ON v.code = h.address_code AND v.urban_rural = '乡村'
ANTI JOIN bad b ON b.hukou_number = h.hukou_number
WHERE h.status = '正常';

-- The subject of a missed household: its head (户主), else its eldest member. Most households have
-- one head, who is the subject: only the others are ranked (a window over every candidate sorted
-- 2.3 M rows at the large size: 1.0-1.9 s against 0.5-0.9, the same subjects).
CREATE OR REPLACE TEMP TABLE missed_subjects AS
WITH heads AS (SELECT hukou_number FROM missed_candidates WHERE relation = '户主' GROUP BY hukou_number HAVING count(*) = 1),
picked AS (
    SELECT c.* FROM missed_candidates c SEMI JOIN heads h ON h.hukou_number = c.hukou_number WHERE c.relation = '户主'
    UNION ALL
    SELECT * EXCLUDE (rn) FROM (
        SELECT c.*, row_number() OVER (PARTITION BY hukou_number ORDER BY relation <> '户主', birth_date, id_number, name,
                                                     id_number_raw, ident) AS rn
        FROM missed_candidates c ANTI JOIN heads h ON h.hukou_number = c.hukou_number)
    WHERE rn = 1)
SELECT ident AS subject_key, ident AS subject_person_key, id_number AS subject_id_number,
       id_number_raw AS subject_id_number_raw, name AS subject_name, '' AS household_code, hukou_number,
       substr(address_code, 1, 9) || '000' AS township_code, address_code AS village_code,
       NULL::VARCHAR AS household_status, NULL::INTEGER AS registered_year
FROM picked;
