"""The pieces of ``bench/bench_e2e.py``: the sink, the processes and their CPU time, the
pipelines under test (Takt and the bare Celery peers), what a run measured, the round-trip
tracer and the profile, and the report."""
