"""The application factory: ``create_app(settings)``.

The web process never runs a model: it stores uploads, writes job rows,
enqueues them and streams their progress; workers do the separating (the
``serve`` command starts one in the same process group, see cli/serve.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from soundforge import __version__
from soundforge.config import Settings, get_settings
from soundforge.db.security import derive_key
from soundforge.jobs.pipeline import Pipeline
from soundforge.storage.temporary import sweep_temporary_files
from soundforge.web.errors import install_error_handlers
from soundforge.web.events import JobEvents
from soundforge.web.guard import StrangerGuard
from soundforge.web.openapi import use_error_shape
from soundforge.web.security import SESSION_MAX_AGE, LoginLimiter
from soundforge.web.templating import STATIC_DIR, create_templates
from soundforge.web.uploads import UploadLimitMiddleware

SESSION_COOKIE = "soundforge_session"

API_DESCRIPTION = """
The SoundForge REST API, for scripts. Every route answers JSON; errors are
`{"error": {"code": "...", "message": "..."}}` with a stable `code`.

**Authentication**: create a personal token in *Settings → API tokens* and send
it as `Authorization: Bearer sf_…`.

**Typical script**: `POST /api/tracks` (multipart, field `files`) →
`POST /api/tracks/{id}/separations` → follow `GET /api/jobs/{id}/events`
(Server-Sent Events) or poll `GET /api/jobs/{id}` → `GET /api/jobs/{id}/stems`
and download each stem's `download_url`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    pipeline: Pipeline | None = None,
    https_only: bool = False,
) -> FastAPI:
    """A ready app. ``pipeline``: share an open one (tests, the serve command);
    otherwise the app opens its own and closes it at shutdown. The database
    schema must be up to date (``upgrade_database``; ``serve`` does it).
    ``https_only``: mark the session cookie Secure (behind a TLS proxy)."""
    settings = settings or (pipeline.settings if pipeline else get_settings())
    owns_pipeline = pipeline is None
    pipeline = pipeline or Pipeline(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Uploads a killed server left in uploads/.incoming: also on a web node
        # with no worker of its own (workers sweep them periodically).
        await run_in_threadpool(sweep_temporary_files, settings.data_dir,
                                pipeline.config.gc_min_age)
        try:
            yield
        finally:
            if owns_pipeline:
                pipeline.close()

    app = FastAPI(
        title="SoundForge",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        # /docs is our own page (routers/docs.py): the stock one needs a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        openapi_tags=[
            {"name": "tracks", "description": "Your library: upload, list, delete."},
            {"name": "separations", "description": "Jobs: start, follow, cancel, stems."},
            {"name": "settings", "description": "Your separation defaults."},
            {"name": "lalalai", "description": "LALAL.AI minutes and tasks."},
            {"name": "files", "description": "Stem files and exports."},
        ],
    )
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.db = pipeline.db
    app.state.templates = create_templates()
    app.state.login_limiter = LoginLimiter(pipeline.db)
    app.state.fingerprint_key = derive_key(settings, "web-session-fingerprint:v1")
    app.state.events = JobEvents(pipeline.events)

    install_error_handlers(app)
    use_error_shape(app)
    # Order: the last added runs first. Size limits are checked before the
    # session is even decoded; strangers are refused right after it is.
    app.add_middleware(StrangerGuard)
    app.add_middleware(
        SessionMiddleware,
        secret_key=derive_key(settings, "web-session:v1").hex(),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=https_only,
    )
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_mb * 1024 * 1024,
                       limit_mb=settings.max_upload_mb)

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    from soundforge.web.routers import (
        api,
        auth,
        docs,
        exports,
        files,
        lalalai,
        library,
        settings_page,
        tracks,
    )

    app.include_router(auth.router)
    app.include_router(library.router)
    app.include_router(tracks.router)
    app.include_router(settings_page.router)
    app.include_router(files.router)
    app.include_router(exports.router)
    app.include_router(lalalai.router)
    app.include_router(api.router)
    app.include_router(docs.router)
    return app
