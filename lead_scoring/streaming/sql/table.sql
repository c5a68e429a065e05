{#- One Kafka-backed table. flink: OSS Flink 2.3 kafka connector; confluent: Confluent Cloud, where the
    table owns its topic (partitions, retention, cleanup from lead_scoring/streaming/topics.py).
    Keyed tables keep `Id` in the value too ('value.fields-include' = 'all'; Confluent's default is
    except-key): the SObject sink updates by the value's Id and BigQuery stores it as a column. -#}
CREATE TABLE {% if confluent %}IF NOT EXISTS {% endif %}`{{ table.topic_name }}` (
  {%- for col in table.columns %}
  `{{ col.name }}` {{ col.type }}{{ "," if not loop.last or table.timestamp_column or table.proctime }}
  {%- endfor %}
  {%- if table.timestamp_column %}
  `{{ table.timestamp_column }}` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'{{ "," if table.proctime }}
  {%- endif %}
  {%- if table.proctime %}
  `proc_time` AS PROCTIME()
  {%- endif %}
)
{%- if confluent %}
{%- if table.key %}
DISTRIBUTED BY HASH(`{{ table.key }}`) INTO {{ table.topic.partitions }} BUCKETS
{%- else %}
DISTRIBUTED INTO {{ table.topic.partitions }} BUCKETS
{%- endif %}
WITH (
  'changelog.mode' = 'append',
  {%- if table.key %}
  'key.format' = 'raw',
  'value.fields-include' = 'all',
  {%- endif %}
  'value.format' = '{{ table.confluent_format }}',
  {%- if table.error_log_target %}
  'error-handling.mode' = 'log',
  'error-handling.log.target' = '{{ table.error_log_target }}',
  {%- endif %}
  'kafka.retention.time' = '{{ table.topic.retention_ms }} ms',
  'kafka.cleanup-policy' = '{{ table.topic.cleanup_policy }}'
)
{%- else %}
WITH (
  'connector' = 'kafka',
  'topic' = '{{ table.topic_name }}',
  'properties.bootstrap.servers' = '{{ bootstrap }}',
  {%- for key, value in kafka_properties %}
  'properties.{{ key }}' = '{{ value }}',
  {%- endfor %}
  {%- if table.group_id %}
  'properties.group.id' = '{{ table.group_id }}',
  'properties.auto.offset.reset' = '{{ table.offset_reset }}',
  'scan.startup.mode' = 'group-offsets',
  'properties.commit.offsets.on.checkpoint' = 'true',
  {%- elif table.startup_mode %}
  'scan.startup.mode' = '{{ table.startup_mode }}',
  {%- endif %}
  {%- if table.key %}
  'key.format' = 'raw',
  'key.fields' = '{{ table.key }}',
  'value.fields-include' = 'ALL',
  {%- endif %}
  'sink.delivery-guarantee' = 'at-least-once',
  'properties.linger.ms' = '{{ linger_ms }}',
  {%- if table.flink_format == 'avro' %}
  'value.avro.timestamp_mapping.legacy' = 'false',
  {%- endif %}
  'value.format' = '{{ table.flink_format }}'
)
{%- endif %}
