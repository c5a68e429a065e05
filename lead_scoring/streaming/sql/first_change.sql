{#- The first record of every (Id, LastModifiedDate, source_time) that reaches the scoring stage: a re-emitted
    change (an upstream stage restored from its checkpoint) keeps the input record's Kafka timestamp
    (`source_time` travels through validate and route unchanged) and is scored once, while a re-score request
    of an unchanged lead (`lead-scoring scores rescore`) is a new Kafka record with a new timestamp and is
    scored. Flink plans this as keep-first-row de-duplication on processing time, which emits insert-only
    rows (what ML_PREDICT requires); the state expires after table.exec.state.ttl. -#}
CREATE TEMPORARY VIEW `{{ view }}` AS
SELECT {{ columns }}, `source_time`
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `LastModifiedDate`, `source_time` ORDER BY `proc_time` ASC) AS `first_seen`
  FROM `{{ source }}`
)
WHERE `first_seen` = 1
