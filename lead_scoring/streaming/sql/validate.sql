{#- Statement 1: input_raw (JSON, schemaless) -> input_avro (the contract's Avro schema), bad records -> dlq.
    The checks are generated from lead_scoring.contract (LEAD_FIELDS, TIMESTAMP_PATTERN): see render.py. -#}
EXECUTE STATEMENT SET
BEGIN
INSERT INTO `{{ t.input_avro }}`
SELECT
  {%- for expr in converted %}
  {{ expr }},
  {%- endfor %}
  `source_time`
FROM (
  SELECT {{ payload }} AS `payload`, {{ source_time }} AS `source_time`, {{ reason }} AS `reason`
  FROM `{{ t.input_raw }}`
) AS checked
WHERE `reason` = '';
INSERT INTO `{{ t.dlq }}`
SELECT `payload`, `reason`, {{ epoch_ms("`source_time`") }} AS `source_ts`
FROM (
  SELECT {{ payload }} AS `payload`, {{ source_time }} AS `source_time`, {{ reason }} AS `reason`
  FROM `{{ t.input_raw }}`
) AS checked
WHERE `reason` <> '';
END
