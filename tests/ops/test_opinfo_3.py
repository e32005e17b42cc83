"""OpInfo suite, shard 3 of suite.SHARDS (see suite.py)."""

from suite import make_tests

test_first_sample, test_tflite, test_sweep = make_tests(3)
