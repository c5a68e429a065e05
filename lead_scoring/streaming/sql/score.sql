{#- Statement 4: ML_PREDICT over leads (or contacts) -> lead_scores (or contact_scores), contract section 2;
    the challenger's shadow statements are the same over its own model -> lead_scores_shadow (section 2b).
    A model answer without a usable score (null or outside 0-100, no reasons, no model version) would break
    the score table's NOT NULL columns and fail the statement, and healing would resume into the same record:
    such answers go to the dlq with a reason instead (the second INSERT reads the same ML_PREDICT plan). -#}
{%- macro predicted() -%}
{%- if confluent %}
{#- Confluent's model providers refuse TIMESTAMP inputs: those go to the model as UTC ISO-8601 text. #}
FROM (
  SELECT *{% for alias, expr in text_inputs %},
    {{ expr }} AS `{{ alias }}`{% endfor %}
  FROM (
    {{ source_query | indent(4) }}
  ) AS `unchanged`
) AS `input`,
  LATERAL TABLE(ML_PREDICT('{{ model.name }}', {{ model_input_columns }}))
{%- else %}
FROM ML_PREDICT(
  TABLE `{{ source }}`,
  MODEL `{{ model.name }}`,
  DESCRIPTOR({{ model_input_columns }})
)
{%- endif %}
{%- endmacro %}
{%- set unusable -%}
CASE
    WHEN `score` IS NULL THEN 'model output: score is null'
    WHEN `score` < 0 OR `score` > 100 THEN 'model output: score outside 0-100'
    WHEN `reasons_text` IS NULL THEN 'model output: reasons are null'
    WHEN `model_version` IS NULL THEN 'model output: model version is null'
    ELSE ''
  END
{%- endset %}
EXECUTE STATEMENT SET
BEGIN
INSERT INTO `{{ sink }}`
SELECT
  `Id`,
  `_ObjectType`,
  'updated' AS `_EventType`,
  `score` AS `Lead_Score__c`,
  `reasons_text` AS `Lead_Score_Reasons__c`,
  `model_version` AS `Lead_Score_Model__c`,
  `grade` AS `Lead_Grade__c`,
  `features_hash`,
  {{ score_ts("`source_time`") }} AS `source_ts`,
  {{ score_ts("CURRENT_TIMESTAMP") }} AS `scored_ts`
{{- predicted() }}
WHERE {{ unusable }} = '';
INSERT INTO `{{ dlq }}`
SELECT
  JSON_OBJECT('Id' VALUE `Id`, '_ObjectType' VALUE `_ObjectType`, 'LastModifiedDate' VALUE CAST(`LastModifiedDate` AS STRING),
              'model_version' VALUE `model_version`, 'score' VALUE `score`) AS `payload`,
  {{ unusable }} AS `reason`,
  {{ epoch_ms("`source_time`") }} AS `source_ts`
{{- predicted() }}
WHERE {{ unusable }} <> '';
END
