"""The pieces of ``bench/bench_beat.py``: the peers' app, putting jobs in place, the
beats under test, the arrival recorder, the scenarios and the report."""
