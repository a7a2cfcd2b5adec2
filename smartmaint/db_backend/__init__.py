"""PostgreSQL backend built on django-timescaledb that degrades to plain tables where TimescaleDB is missing."""
