"""API: the FastAPI service for property managers and evaluators (built in its own issue)."""
