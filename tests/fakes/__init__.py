"""Test-only code: fakes and fixtures that stand in for what tests cannot run for real."""
