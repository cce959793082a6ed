"""Takt's domain and service: models, recurrence, the Redis store, the API and the CLI."""

__all__: list[str] = []
