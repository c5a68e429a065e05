{#- The first record of every (Id, LastModifiedDate) that reaches the scoring stage: a re-emitted change (an
    upstream stage restored from its checkpoint) is scored once. Flink plans this as keep-first-row
    de-duplication on processing time, which emits insert-only rows (what ML_PREDICT requires); the state
    expires after table.exec.state.ttl. -#}
CREATE TEMPORARY VIEW `{{ view }}` AS
SELECT {{ columns }}, `source_time`
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `LastModifiedDate` ORDER BY `proc_time` ASC) AS `first_seen`
  FROM `{{ source }}`
)
WHERE `first_seen` = 1
