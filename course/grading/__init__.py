"""Grading: nbgrader's plugins (preprocessors, exchange, export, feedback), the
sandbox of the grading kernels, the intake of submissions and ``python -m course grade``."""
