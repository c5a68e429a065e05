{#- Statement 4: ML_PREDICT over leads (or contacts) -> lead_scores (or contact_scores), contract section 2;
    the challenger's shadow statements are the same over its own model -> lead_scores_shadow (section 2b). -#}
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
