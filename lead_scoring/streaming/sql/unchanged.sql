{#- Echo suppression, in both dialects: the first record of every (Id, features key, re-score run) reaching the
    scoring stage; later ones within the state TTL are not scored again.

    Why: a written score moves the CRM record's LastModifiedDate, and the CRM source (Salesforce Bulk API 2.0 in
    gcp, the local CRM's echo locally) sends the record back with the same features. Keyed on the FEATURES (a
    hash of the model's inputs, computed here), not on LastModifiedDate, such an echo - and a crash replay of
    an upstream stage - is dropped before ML_PREDICT, so it is neither scored nor written nor landed again.
    A re-score request (`_EventType` = 'rescore': a value, Confluent's statements drop Kafka headers) is keyed
    by its run (every record of a run has the run's one Kafka timestamp), so it passes once per run; a real
    change of any feature passes. Every other record's run is NULL.

    Keep-first-row de-duplication (ROW_NUMBER() ... = 1, the exact pattern both planners recognise): locally on
    processing time, which Flink plans as insert-only (what ML_PREDICT needs); in Confluent Cloud on `$rowtime`
    (docs.confluent.io/cloud/current/flink/reference/queries/deduplication: "ORDER BY $rowtime ASC", state
    bounded by the statement property sql.state-ttl). Bounded state: one key per changed (Id, features) for
    the TTL (render.RenderSettings.dedup_ttl), expired after it.
    Limit, stated: a lead whose features return within the TTL to values it already had in that window
    (A -> B -> A) is not re-scored on the return and keeps B's score until its next change or re-score. -#}
SELECT {{ columns }}, `source_time`
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key`, `rescore_run` ORDER BY `{{ order_by }}` ASC) AS `first_seen`
  FROM (
    SELECT *, {% if confluent %}`$rowtime` AS `{{ order_by }}`, {% endif %}{{ features_key }} AS `features_key`,
      CASE WHEN `_EventType` = '{{ rescore }}' THEN `source_time` END AS `rescore_run`
    FROM `{{ source }}`{{ source_hint }}
  )
)
WHERE `first_seen` = 1
