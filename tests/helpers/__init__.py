"""Helpers shared by several test folders, imported by their full name (``tests.helpers.x``).

``tests`` is a package and pytest puts the repository root on ``sys.path``
(``pythonpath = ["."]`` in pyproject.toml), so no test inserts paths itself.
Synthetic data that benchmarks and docs also use lives in
``kbp_notebook.datasets``; what is here serves the tests alone.
"""
