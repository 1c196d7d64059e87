"""The run's spec: `RunConfig` (every option declared once) and its run id, experiment files
validated and expanded into configs, and the metric vocabulary. Pure Python and pydantic."""
