"""Takt's Celery beat scheduler: ``celery -A workers.app beat -S beat.JobScheduler``."""

from beat.scheduler import JobScheduler, task_id_for

__all__ = ["JobScheduler", "task_id_for"]
