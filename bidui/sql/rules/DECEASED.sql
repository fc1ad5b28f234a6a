-- code: DECEASED
-- title: 已死亡仍在册
-- category: natural_change
-- inputs: register_members, hukou
-- parameters:
-- dated: hukou.status_date, deaths.death_date
-- 规则含义：户籍登记为死亡，或死亡医学证明上是该成员，死亡日期在比对日之前，但他仍在建档立卡名单中。
-- 入户核实要点：向家属和村委会确认是否去世、去世日期。
-- 属实·已整改：确已去世，已按自然减少办理（数据已更正）。
-- 属实·申请豁免：一般不适用；确有特殊情况的，按本地政策写明。
-- 不属实：本人健在，死亡记录是他人的（不是本人）；写明核对过的证件。
-- 留存佐证：死亡证明、户籍注销证明。
-- A member's hukou status is 死亡, or a death certificate names the member, with the death on or
-- before the run date. (A 注销 for another reason is not a death.)
WITH deaths AS (
    -- the members' records alone are quoted as JSON
    SELECT h.ident, h.status_date AS death_date, 'hukou' AS ds, to_json(h) AS rec, h.link_method, h.link_score,
           h.link_explanation
    FROM hukou h SEMI JOIN subjects s ON s.ident = h.ident
    WHERE h.status = '死亡' AND h.is_primary AND h.status_date <= $run_date::DATE
    UNION ALL
    SELECT d.ident, d.death_date, 'deaths', to_json(d), d.link_method, d.link_score, d.link_explanation
    FROM deaths_linked d WHERE d.death_date <= $run_date::DATE
)
-- A hukou record is the member's own (found through the member's link to hukou): that link is the clue's.
SELECT s.*, d.ds AS evidence_dataset, strftime(d.death_date, '%Y-%m-%d') AS evidence_key, d.death_date AS evidence_date,
       d.rec AS evidence_record,
       CASE WHEN d.ds = 'hukou' THEN s.subject_link_method ELSE d.link_method END AS link_method,
       CASE WHEN d.ds = 'hukou' THEN s.subject_link_score ELSE d.link_score END AS link_score,
       CASE WHEN d.ds = 'hukou' THEN s.subject_link_explanation ELSE d.link_explanation END AS link_explanation
FROM deaths d
JOIN subjects s ON s.ident = d.ident
