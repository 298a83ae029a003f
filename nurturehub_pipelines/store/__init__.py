"""The app database: tables, migrations, and the queries the rest of the system shares."""
