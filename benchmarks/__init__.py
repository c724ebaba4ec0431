"""Benchmarks of kbp_notebook, run as modules from the repository root.

``python -m benchmarks.run_all`` (``make bench``) runs them all and writes
``benchmarks/RESULTS.md``; each ``python -m benchmarks.<name> --help`` says
what it measures. Run from the root, the root is on ``sys.path``, so
``benchmarks``, ``scenarios`` and ``kbp_notebook`` import by their full names;
synthetic data comes from ``kbp_notebook.datasets``, never from ``tests/``.
"""
