"""The search service: an upload page, HTML results, and the JSON API at POST /search.

Development:  python app.py [--port 5000]           (imgsim serve --dev)
Production:   gunicorn -c gunicorn.conf.py 'app:create_app()'   (imgsim serve)

``create_app`` only wires things together: a configuration, one Service per worker (given the
build function, so that it can compact in the background), the blueprints of ``serve/web/``, the
error handlers and the API document that apiflask generates from the routes' declarations. Each
worker loads the model itself (after gunicorn forks: TensorFlow must not be
imported before the fork) and memory-maps the Annoy index, so all workers share one copy of it.
When ``img2vec.py`` switches the index's ``current`` pointer, every worker picks up the new
version within ``reload_interval`` seconds; a request uses one version from start to end.
"""

from __future__ import annotations

from apiflask import APIFlask

from imgsim import __version__, config
from imgsim.indexing import indexer
from imgsim.models.embedders import Embedder
from imgsim.serve import service, web
from imgsim.serve.resources import resource
from imgsim.serve.web import admin, copies, errors, files, headers, openapi, ops, results


def create_app(cfg: config.Config | None = None, embedder: Embedder | None = None) -> APIFlask:
    """Build the Flask app. ``embedder`` lets tests share one loaded model across apps."""
    cfg = cfg or config.load()
    app = APIFlask(
        __name__,
        title="imgsim",
        version=__version__,
        json_errors=False,
        docs_path="/docs",
        template_folder=str(resource("templates")),
        static_folder=str(resource("static")),
    )
    openapi.init_app(app)
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_upload_bytes
    svc = service.assemble(cfg, compact=indexer.compact, embedder=embedder, logger=app.logger)
    web.init_app(app, svc)
    for blueprint in (results.bp, files.bp, admin.bp, ops.bp, copies.bp):
        app.register_blueprint(blueprint)
    errors.init_app(app)
    headers.init_app(app)
    svc.start()  # load the model and index now, in this (post-fork) worker
    return app
