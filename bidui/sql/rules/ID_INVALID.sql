-- code: ID_INVALID
-- title: 证件号码错误
-- category: data_quality
-- inputs: register_members
-- parameters:
-- link: member
-- 规则含义：建档立卡名单中该成员的证件号码不合法（位数、省份代码、出生日期或校验位不对，或被 Excel
--    截断）。系统找到了本人时，会给出可能的正确号码。
-- 入户核实要点：核对本人身份证原件；确认系统给出的可能正确号码是否就是本人的。
-- 属实·已整改：号码录错，已在系统中更正（数据已更正）。
-- 属实·申请豁免：一般不适用（号码必须更正）；确有特殊情况的写明。
-- 不属实：名单中的号码与身份证完全一致；写明核对结果，由县级核查。
-- 留存佐证：身份证复印件（号码中间几位可遮挡）。
-- A member's ID fails length, province, birth date or check character after normalisation (an
-- Excel float is this case too). The evidence names the probable correct ID where linkage found
-- the person.
SELECT * EXCLUDE (rn) FROM (
    SELECT m.* REPLACE (trim(m.subject_id_number_raw) AS subject_id_number),
           'register_members' AS evidence_dataset, trim(m.subject_id_number_raw) AS evidence_key,
           NULL::DATE AS evidence_date,
           json_object('status', m.subject_id_status, 'probable_id', m.subject_person_key) AS evidence_record,
           m.subject_link_method AS link_method, m.subject_link_score AS link_score,
           m.subject_link_explanation AS link_explanation,
           row_number() OVER (PARTITION BY m.subject_key, trim(m.subject_id_number_raw)
                              ORDER BY m.household_code, m.source_row) AS rn
    FROM member_subjects m WHERE m.subject_id_status <> 'valid')
WHERE rn = 1
