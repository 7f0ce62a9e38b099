"""Shared fixtures. Tests run against real PostgreSQL (DATABASE_URL or the embedded server)."""
