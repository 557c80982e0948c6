"""Side-by-side benchmarks of secretcache and the libraries a Python team would otherwise use.

Run with ``python -m benchmarks`` (full) or ``python -m benchmarks --quick``. Everything
talks to moto's server started on 127.0.0.1 in a child process; nothing here is
collected by pytest or needs an AWS account.
"""
