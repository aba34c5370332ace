"""The web app: server-rendered pages, live progress over SSE, and the REST API.

    from soundforge.web import create_app
    app = create_app(settings)
"""

from soundforge.web.app import create_app

__all__ = ["create_app"]
