"""The Dagster code location: definitions, jobs and the CLI's in-process runner."""
