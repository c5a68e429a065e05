{#- Statement 3: the model. flink: our kserve provider (or triton, once a fixed flink-model-triton exists);
    confluent: Vertex AI through a connection whose service key never appears in SQL. -#}
CREATE {% if not confluent %}TEMPORARY {% endif %}MODEL `{{ model.name }}`
INPUT (
  {%- for col in model.inputs %}
  `{{ col.name }}` {{ col.type }}{{ "," if not loop.last }}
  {%- endfor %}
)
OUTPUT (
  {%- for col in model.outputs %}
  `{{ col.name }}` {{ col.type }}{{ "," if not loop.last }}
  {%- endfor %}
)
COMMENT 'lead scorer: the version is the one the endpoint serves (each score carries it)'
WITH (
  {%- for key, value in model.options %}
  '{{ key }}' = '{{ value }}'{{ "," if not loop.last }}
  {%- endfor %}
)
