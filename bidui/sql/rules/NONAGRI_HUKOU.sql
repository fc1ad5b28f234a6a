-- code: NONAGRI_HUKOU
-- title: 农转非
-- category: natural_change
-- inputs: register_members, hukou
-- parameters:
-- 规则含义：户籍显示该成员的户口性质为非农业，或有“农转非”的户籍变动记录。
-- 入户核实要点：何时、因何转为非农户口（整户转非、升学、就业）；现在是否仍在村里生活。
-- 属实·已整改：按本地对农转非人员的政策处理（标注、退出或更正数据）。
-- 属实·申请豁免：按本地政策农转非人员可以保留的，写明依据。
-- 不属实：户口性质登记有误或不是本人；附户口簿。
-- 留存佐证：户籍变动记录、户口簿。
-- A member's hukou type is 非农业, or a 农转非 change names the member. The evidence key is the
-- change's date; a 非农业 member with no such change gets one clue with an empty key.
WITH changes AS (
    SELECT c.ident, strftime(c.change_date, '%Y-%m-%d') AS key, c.change_date, to_json(c) AS rec, c.link_method,
           c.link_score, c.link_explanation, 'hukou_changes' AS ds
    -- only the members' records are quoted (JSON of every 农转非 change, or of the 270,000 非农业
    -- hukou rows at the large size, cost more than the rule)
    FROM hukou_changes_linked c SEMI JOIN subjects s ON s.ident = c.ident WHERE c.change_type = '农转非'
),
types AS (
    SELECT h.ident, '' AS key, NULL::DATE AS change_date, to_json(h) AS rec, h.link_method, h.link_score,
           h.link_explanation, 'hukou' AS ds
    FROM hukou h SEMI JOIN subjects s ON s.ident = h.ident WHERE h.hukou_type = '非农业' AND h.is_primary AND h.ident NOT IN (SELECT ident FROM changes WHERE ident IS NOT NULL)
)
SELECT s.*, x.ds AS evidence_dataset, x.key AS evidence_key, x.change_date AS evidence_date, x.rec AS evidence_record,
       -- the member's own hukou record: the link is the member's to hukou
       CASE WHEN x.ds = 'hukou' THEN s.subject_link_method ELSE x.link_method END AS link_method,
       CASE WHEN x.ds = 'hukou' THEN s.subject_link_score ELSE x.link_score END AS link_score,
       CASE WHEN x.ds = 'hukou' THEN s.subject_link_explanation ELSE x.link_explanation END AS link_explanation
FROM (SELECT * FROM changes UNION ALL SELECT * FROM types) x
JOIN subjects s ON s.ident = x.ident
