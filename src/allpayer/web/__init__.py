"""The web dashboard: server-rendered pages (Jinja2) served by the API app; see `pages`."""
