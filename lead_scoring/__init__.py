"""Real-time lead scoring orchestrated by Dagster."""
