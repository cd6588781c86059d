"""Intake: read the series (b4), find its base, import and check out trees, apply patches."""
