{#- Echo suppression, in both dialects: what reaches the model is (1) the first record of every (Id, features
    key) within the state TTL, re-score requests left out of the result, and (2) the first re-score request of
    every (Id, features key, run).

    Why: a written score moves the CRM record's LastModifiedDate, and the CRM source (Salesforce Bulk API 2.0 in
    gcp, the local CRM's echo locally) sends the record back with the same features. Keyed on the FEATURES (a
    hash of the model's inputs, computed here), not on LastModifiedDate, such an echo - and a crash replay of
    an upstream stage - is dropped before ML_PREDICT, so it is neither scored nor written nor landed again.
    A re-score request (`_EventType` = 'rescore': a value, Confluent's statements drop Kafka headers) passes
    once per run (every record of a run has the run's one Kafka timestamp); it also goes through (1), so the
    echo of the score it wrote is suppressed even when the lead's last change is older than the TTL.

    Keep-first-row de-duplication (ROW_NUMBER() ... = 1, the exact pattern both planners recognise): locally on
    processing time, which Flink plans as insert-only (what ML_PREDICT needs); in Confluent Cloud on `$rowtime`
    (docs.confluent.io/cloud/current/flink/reference/queries/deduplication: "ORDER BY $rowtime ASC", state
    bounded by the statement property sql.state-ttl). Bounded state: one key per changed (Id, features) and per
    re-score request for the TTL (render.RenderSettings.dedup_ttl), expired after it.
    Limit, stated: a lead whose features return within the TTL to values it already had in that window
    (A -> B -> A) is not re-scored on the return and keeps B's score until its next change or re-score. -#}
{%- macro first(partition, where) %}
SELECT {{ columns }}, `source_time`, `_EventType` IS NOT DISTINCT FROM '{{ rescore }}' AS `is_rescore`
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY {{ partition }} ORDER BY `{{ order_by }}` ASC) AS `first_seen`
  FROM (
    SELECT *, {% if confluent %}`$rowtime` AS `{{ order_by }}`, {% endif %}{{ features_key }} AS `features_key`
    FROM `{{ source }}`{{ source_hint }}{{ where }}
  )
)
WHERE `first_seen` = 1
{%- endmacro %}
SELECT {{ columns }}, `source_time`
FROM ({{ first("`Id`, `features_key`", "") | indent(2) }}
) AS `changed`
WHERE NOT `is_rescore`
UNION ALL
SELECT {{ columns }}, `source_time`
FROM ({{ first("`Id`, `features_key`, `source_time`", "\n    WHERE `_EventType` = '" ~ rescore ~ "'") | indent(2) }}
) AS `rescored`
