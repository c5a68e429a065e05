"""Model serving: the KServe model server (`model`, `server`, `cli`), its local process helpers (`process`),
and the `model_deployment` asset with its local / Vertex AI resources (`assets`, `resources`).
See docs/serving.md."""
