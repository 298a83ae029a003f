"""One Dagster resource per CRM, each a declaration on the shared connector core (`core/`)."""
