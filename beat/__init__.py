"""Takt's Celery beat scheduler: ``celery -A workers.app beat -S beat.JobScheduler``."""

from beat.scheduler import JobScheduler

__all__ = ["JobScheduler"]
