"""A job's vocabulary and the rules that need nothing but the job: the pydantic models,
the bounds on every value, the secret rule, names and references, and the first and next
occurrence under a job's missed-run policy. No I/O: nothing here talks to Redis or Celery.
"""
