-- Shared view: each person's latest dangerous-house appraisal (by appraisal date), the one the
-- exit-risk and missed-inclusion rules judge the house by.
-- parameters:

CREATE OR REPLACE TEMP TABLE latest_appraisals AS
SELECT * EXCLUDE (rn) FROM (
    SELECT d.*, row_number() OVER (PARTITION BY d.ident ORDER BY d.appraisal_date DESC, d.source_row DESC) AS rn
    FROM dangerous_housing_linked d WHERE d.ident IS NOT NULL)
WHERE rn = 1;
