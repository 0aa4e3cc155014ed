"""The sections of ``tools/bench_ar_world.py``: each measures one thing and prints its table."""
