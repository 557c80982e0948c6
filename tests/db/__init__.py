"""Rotation tests against real PostgreSQL and MariaDB servers."""
