"""The performance harness: our engines beside Django's; ``python -m benchmarks --help``."""
