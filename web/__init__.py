"""`docstream serve`: the results API and the review pages (FastAPI, Jinja2 templates)."""
