-- code: DECEASED
-- title: 已死亡仍在册
-- category: natural_change
-- inputs: register_members, hukou
-- parameters:
-- A member's hukou status is 死亡, or a death certificate names the member, with the death on or
-- before the run date. (A 注销 for another reason is not a death.)
WITH deaths AS (
    SELECT h.ident, h.status_date AS death_date, 'hukou' AS ds, to_json(h) AS rec, h.link_method, h.link_score,
           h.link_explanation
    FROM hukou h WHERE h.status = '死亡' AND h.is_primary AND h.status_date <= $run_date::DATE
    UNION ALL
    SELECT d.ident, d.death_date, 'deaths', to_json(d), d.link_method, d.link_score, d.link_explanation
    FROM deaths_linked d WHERE d.death_date <= $run_date::DATE
)
SELECT s.*, d.ds AS evidence_dataset, strftime(d.death_date, '%Y-%m-%d') AS evidence_key, d.death_date AS evidence_date,
       d.rec AS evidence_record, d.link_method, d.link_score, d.link_explanation
FROM deaths d
JOIN subjects s ON s.ident = d.ident
