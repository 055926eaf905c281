"""snapmixin's test suite (a package, so ``python -m tests.torture`` works)."""
