"""The performance harness: our engines side by side with Django's, in one run.

``python -m benchmarks`` counts each request's I/O, times the in-process cycles
with pyperf, drives the app end to end under gunicorn and measures lost
updates, then writes ``docs/benchmarks.rst``, its charts and the raw numbers.
``--quick`` is a smoke run; ``--help`` lists the options. Every part uses the
benchmarks' own stores, never a site's or a test suite's data.
"""
