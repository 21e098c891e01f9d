"""Connections, migrations, queries and bulk loading."""
