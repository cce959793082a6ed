"""Takt's Celery workers: the app, the action tasks, and the execution of an attempt."""

__all__: list[str] = []
