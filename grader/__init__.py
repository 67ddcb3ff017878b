"""Nexus Labs: the `lab` command and the grader behind it."""

__version__ = "0.1.0"
