-- code: NONAGRI_HUKOU
-- title: 农转非
-- category: natural_change
-- inputs: register_members, hukou
-- parameters:
-- A member's hukou type is 非农业, or a 农转非 change names the member. The evidence key is the
-- change's date; a 非农业 member with no such change gets one clue with an empty key.
WITH changes AS (
    SELECT c.ident, strftime(c.change_date, '%Y-%m-%d') AS key, c.change_date, to_json(c) AS rec, c.link_method,
           c.link_score, c.link_explanation, 'hukou_changes' AS ds
    FROM hukou_changes_linked c WHERE c.change_type = '农转非'
),
types AS (
    SELECT h.ident, '' AS key, NULL::DATE AS change_date, to_json(h) AS rec, h.link_method, h.link_score,
           h.link_explanation, 'hukou' AS ds
    FROM hukou h WHERE h.hukou_type = '非农业' AND h.is_primary AND h.ident NOT IN (SELECT ident FROM changes WHERE ident IS NOT NULL)
)
SELECT s.*, x.ds AS evidence_dataset, x.key AS evidence_key, x.change_date AS evidence_date, x.rec AS evidence_record,
       x.link_method, x.link_score, x.link_explanation
FROM (SELECT * FROM changes UNION ALL SELECT * FROM types) x
JOIN subjects s ON s.ident = x.ident
