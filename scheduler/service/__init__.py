"""The rules of the service: what a write to a job or a collection may do (quotas, limits,
retries, the outbound policy), templates, built-in jobs, the management commands a job can
run, and import/export. Every write path (ARM and classic API, console, client, commands)
goes through :class:`~scheduler.service.jobs.JobService` and
:class:`~scheduler.service.job_collections.CollectionService`.
"""
