"""The management HTTP API (routes, models, OpenAPI document) and the CLI's signed client for it."""
