-- code: NOT_IN_HUKOU
-- title: 户籍查无此人
-- category: data_quality
-- inputs: register_members, hukou
-- parameters:
-- link: member
-- 规则含义：按证件号码、姓名和出生日期，都在户籍数据中找不到该成员。
-- 入户核实要点：核对户口簿和身份证；此人是否真实存在、是否健在、户口登记在哪里。
-- 属实·已整改：名单中的号码或姓名录错，已更正；或查无此人，已清退出列（写明是哪种）。
-- 属实·申请豁免：户口在外地但确为本户成员，按本地政策保留的，写明依据。
-- 不属实：户口簿与名单一致、户口就在本地；附户口簿，由县级向公安核查。
-- 留存佐证：户口簿、身份证。
-- A member links to no hukou record, exactly or fuzzily (a link to confirm counts as a link).
SELECT s.*, 'hukou' AS evidence_dataset, '' AS evidence_key, NULL::DATE AS evidence_date,
       NULL AS evidence_record, s.subject_link_method AS link_method, s.subject_link_score AS link_score,
       s.subject_link_explanation AS link_explanation
FROM subjects s
WHERE s.subject_person_key IS NULL
