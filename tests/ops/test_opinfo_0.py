"""OpInfo suite, shard 0 of suite.SHARDS (see suite.py)."""

from suite import make_tests

test_first_sample, test_tflite, test_sweep = make_tests(0)
