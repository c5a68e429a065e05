{#- Statement 1: input_raw (JSON, schemaless) -> input_avro (the contract's Avro schema), bad records -> dlq.
    Both checks come from lead_scoring.contract: `udf` reads the view `checked.sql` (CONTRACT_CHECK with the
    contract spec: one JSON parse per record, our jar); otherwise per-field JSON_QUERY/JSON_VALUE checks are
    rendered (render.py). -#}
{%- if udf %}
EXECUTE STATEMENT SET
BEGIN
INSERT INTO `{{ t.input_avro }}`
SELECT
  {%- for expr in converted %}
  {{ expr }},
  {%- endfor %}
  `v`.`source_time`
FROM `{{ checked }}` AS `v`
WHERE `v`.`c`.`reason` = '';
INSERT INTO `{{ t.dlq }}`
SELECT `v`.`payload`, `v`.`c`.`reason`, {{ epoch_ms("`v`.`source_time`") }} AS `source_ts`
FROM `{{ checked }}` AS `v`
WHERE `v`.`c`.`reason` <> '';
END
{%- else %}
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
{%- endif %}
