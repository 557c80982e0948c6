"""The in-memory Secrets Manager behind :mod:`secretcache.testing` (private; import from there)."""
