"""The web console: MailStore's "Jobs" page for Takt, served by the API at ``/``.

Server-rendered (Jinja2) with a little plain JavaScript; every action goes through the
same services as the REST API. ``docs/console.md`` describes it.
"""

from scheduler.console.routes import router

__all__ = ["router"]
