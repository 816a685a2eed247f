"""The WSGI entry point: `gunicorn wsgi:app` (creditctl serve does exactly that)."""

from adapters.bootstrap import create_wsgi_app

app = create_wsgi_app()
