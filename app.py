"""The search service: an upload page, HTML results, and the JSON API at POST /search.

Development:  python app.py [--port 5000]
Production:   gunicorn -c gunicorn.conf.py 'app:create_app()'

Each worker loads the Keras model itself (after gunicorn forks: TensorFlow must not be
imported before the fork) and memory-maps the Annoy index, so all workers share one copy of it.
When ``img2vec.py`` switches the index's ``current`` pointer, every worker picks up the new
version within ``reload_interval`` seconds; a request uses one version from start to end.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import io
import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, render_template, request, send_file, send_from_directory
from werkzeug.exceptions import HTTPException

import ann
import config
import imaging
import live
import plots
import store

THUMB_SIDE = 256
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class ApiError(Exception):
    """An error answered as ``{"error": message, "code": code}`` (or a friendly page) with a 4xx."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Snapshot:
    """One index version and the model that embeds queries for it: what one request uses."""

    index: ann.SearchIndex
    embedder: object
    link_target: str


class IndexHolder:
    """Keeps the current index (and its model) open, and follows ``current`` when it moves."""

    def __init__(self, cfg: config.Config, embedder=None):
        self.cfg = cfg
        self._given_embedder = embedder
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked_at = 0.0
        self.load_error: str | None = None

    def _link_target(self) -> str | None:
        try:
            return os.readlink(Path(self.cfg.index_dir) / "current")
        except OSError:
            return None

    def _open(self, target: str) -> Snapshot:
        index = ann.open_index(self.cfg.index_dir)
        old = self._snapshot
        if self._given_embedder is not None:
            embedder = self._given_embedder
        elif old is not None and old.embedder.key == index.manifest["model_key"]:
            embedder = old.embedder
        else:
            embedder = ann.query_embedder(index.manifest, index.version)
        return Snapshot(index, embedder, target)

    def get(self) -> Snapshot | None:
        """The snapshot to answer with; reopens at most every ``reload_interval`` seconds."""
        now = time.monotonic()
        if self._snapshot is not None and now - self._checked_at < self.cfg.reload_interval:
            return self._snapshot
        with self._lock:
            if self._snapshot is not None and now - self._checked_at < self.cfg.reload_interval:
                return self._snapshot
            self._checked_at = now
            target = self._link_target()
            if target is not None and (self._snapshot is None or target != self._snapshot.link_target):
                try:
                    self._snapshot = self._open(target)
                    self.load_error = None
                except Exception as error:  # keep serving the old version; say why on /healthz
                    self.load_error = f"{type(error).__name__}: {error}"
            elif target is None and self._snapshot is None:
                self.load_error = "no index built yet: run python img2vec.py FOLDER"
            return self._snapshot


def _wants_json() -> bool:
    fmt = request.args.get("format")  # never the form: an error handler must not parse the body
    if fmt in ("json", "html"):
        return fmt == "json"
    if request.path.startswith(("/images", "/thumbs", "/healthz", "/stats", "/openapi")):
        return True
    if request.method == "POST" and request.mimetype not in FORM_TYPES:
        return True  # a raw image body comes from a program, not from the page
    if not request.accept_mimetypes:
        return True  # programs often send no Accept header; browsers always do
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "application/json"


def _parse_k(cfg: config.Config) -> int:
    raw = request.values.get("k", str(cfg.k))
    try:
        k = int(raw)
    except ValueError:
        raise ApiError(400, "bad_k", f"k must be a whole number from 1 to {cfg.max_k}, got {raw!r}") from None
    if not 1 <= k <= cfg.max_k:
        raise ApiError(400, "bad_k", f"k must be from 1 to {cfg.max_k}, got {k}")
    return k


def _uploaded_bytes() -> tuple[bytes, str | None]:
    upload = request.files.get("image")
    if upload is not None:
        return upload.read(), upload.filename or None
    if request.files:
        raise ApiError(400, "no_image", "send the image in a form field named 'image'")
    return request.get_data(cache=False), None


def _preview_data_url(image) -> str:
    """The query image as a small inline JPEG: shown back to the user, never written to disk."""
    preview = image.copy()
    preview.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buffer = io.BytesIO()
    preview.save(buffer, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Compactor:
    """Rebuilds the Annoy index in a background thread once the live delta is large enough."""

    def __init__(self, cfg: config.Config, app_logger):
        self.cfg = cfg
        self.logger = app_logger
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def maybe_start(self, snap: Snapshot, view: live.LiveView) -> bool:
        if view.pending < self.cfg.compact_threshold:
            return False
        with self._lock:
            if self.thread is not None and self.thread.is_alive():
                return False
            self.thread = threading.Thread(target=self._run, args=(snap,), name="compaction", daemon=True)
            self.thread.start()
            return True

    def _run(self, snap: Snapshot) -> None:
        import img2vec

        manifest = snap.index.manifest
        cfg = self.cfg.replace(
            reduce=manifest["reduce"],
            trees=manifest["trees"],
            metric=manifest["metric"],
            dims=manifest["dims"] if manifest["reduce"] != "none" else self.cfg.dims,
        )
        try:
            dataset = manifest.get("dataset") or snap.index.collection_root
            report = img2vec.build_index(
                dataset, cfg, embedder=snap.embedder, progress=False, log=self.logger.info
            )
            self.logger.info("compaction published %s with %d items", report.version.name, report.items)
        except store.BuildInProgress:
            self.logger.info("compaction skipped: another rebuild is running")
        except Exception:
            self.logger.exception("compaction failed; the current index keeps serving")


def create_app(cfg: config.Config | None = None, embedder=None) -> Flask:
    """Build the Flask app. ``embedder`` lets tests share one loaded model across apps."""
    cfg = cfg or config.load()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_upload_bytes
    holder = IndexHolder(cfg, embedder)
    holder.get()  # load the model and index now, in this (post-fork) worker
    layer = live.LiveLayer(cfg.index_dir)
    compactor = Compactor(cfg, app_logger=app.logger)
    started = time.time()
    counts: Counter[str] = Counter()
    thumbs_dir = Path(cfg.index_dir) / "thumbs"

    def current(allow_empty: bool = False) -> tuple[Snapshot, live.LiveView]:
        """The index version and live delta that this whole request answers from."""
        snap = holder.get()
        if snap is None:
            raise ApiError(409, "no_index", "The index is not built yet: run `python img2vec.py FOLDER`.")
        view = layer.view(snap.index)
        if not allow_empty and item_count(snap, view) == 0:
            raise ApiError(409, "empty_index", "The index has no images: every one was removed.")
        return snap, view

    def item_count(snap: Snapshot, view: live.LiveView) -> int:
        present = sum(1 for i in view.deleted if i in snap.index.rows_by_id or i in view.rows_by_id)
        return len(snap.index.items) + len(view.ids) - present

    def item_for(snap: Snapshot, view: live.LiveView, item_id: int) -> tuple[np.ndarray, dict]:
        """An item's vector (in the index's space) and catalogue entry, from the base or the delta."""
        row = snap.index.rows_by_id.get(item_id)
        if item_id not in view.deleted and row is not None:
            return np.array(snap.index.annoy.get_item_vector(row), np.float32), snap.index.items[row]
        row = view.rows_by_id.get(item_id)
        if item_id not in view.deleted and row is not None:
            return view.vectors[row], view.items[row]
        raise ApiError(404, "unknown_id", f"no image with id {item_id} in the index")

    def decode_upload(data: bytes):
        if not data:
            raise ApiError(400, "empty_body", "no image received: the upload was empty")
        try:
            return imaging.decode_rgb(data, cfg.max_image_pixels)
        except imaging.ImageTooLarge as error:
            raise ApiError(413, "too_many_pixels", str(error)) from None
        except imaging.UnreadableImage as error:
            raise ApiError(400, "not_an_image", f"cannot read the upload as an image: {error}") from None

    def require_admin() -> None:
        if not cfg.admin_token:
            raise ApiError(403, "disabled", "adding and removing images is off: set IMGSIM_ADMIN_TOKEN")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {cfg.admin_token}".encode()):
            raise ApiError(401, "unauthorized", "send the admin token as 'Authorization: Bearer TOKEN'")

    def answer(
        snap: Snapshot,
        view: live.LiveView,
        query: dict,
        hits: list[ann.Hit],
        k: int,
        began: float,
        preview: str | None,
    ):
        manifest = snap.index.manifest
        payload = {
            "query": query,
            "k": k,
            "results": [
                {
                    "id": hit.id,
                    "path": hit.path,
                    "url": f"/images/{hit.id}",
                    "thumbnail": f"/thumbs/{hit.id}",
                    "distance": round(hit.distance, 6),
                    "score": round(hit.score, 6),
                }
                for hit in hits
            ],
            "index": {
                "model": manifest["model"],
                "items": item_count(snap, view),
                "built_at": manifest["created_at"],
                "version": snap.index.version.name,
            },
            "took_ms": round((time.perf_counter() - began) * 1000, 1),
        }
        if _wants_json():
            return jsonify(payload)
        return render_template("results.html", result=payload, preview=preview, max_k=cfg.max_k)

    @app.get("/")
    def home():
        counts["home"] += 1
        snap = holder.get()
        return render_template("index.html", snap=snap, k=cfg.k, max_k=cfg.max_k, cfg=cfg)

    @app.post("/search")
    def search_upload():
        began = time.perf_counter()
        counts["search_upload"] += 1
        k = _parse_k(cfg)
        data, filename = _uploaded_bytes()
        image = decode_upload(data)
        snap, view = current()
        vector = snap.embedder.embed_images([image])[0]
        hits = live.search(snap.index, view, vector, k, cfg.search_k)
        query = {"type": "upload", "filename": filename, "width": image.width, "height": image.height}
        return answer(snap, view, query, hits, k, began, _preview_data_url(image))

    @app.get("/search")
    def search_by_id():
        began = time.perf_counter()
        counts["search_id"] += 1
        k = _parse_k(cfg)
        raw_id = request.args.get("id", "")
        if not raw_id.isdigit():
            raise ApiError(400, "bad_id", "give the id of an indexed image: /search?id=17")
        snap, view = current()
        vector, item = item_for(snap, view, int(raw_id))
        # the stored vector: no re-upload, no model run; the image itself is left out of its results
        hits = live.search(snap.index, view, vector, k, cfg.search_k, exclude=item["id"], reduced=True)
        query = {"type": "id", "id": item["id"], "path": item["path"], "url": f"/images/{item['id']}"}
        return answer(snap, view, query, hits, k, began, f"/thumbs/{item['id']}")

    @app.get("/images/<int:item_id>")
    def image_file(item_id: int):
        counts["images"] += 1
        snap, view = current()
        _, item = item_for(snap, view, item_id)
        path = snap.index.collection_root / item["path"]  # from the catalogue, never from the request
        if not path.is_file():
            raise ApiError(404, "file_missing", f"image {item_id} is indexed but its file is gone")
        return send_file(path, max_age=3600)

    @app.get("/thumbs/<int:item_id>")
    def thumbnail(item_id: int):
        counts["thumbs"] += 1
        snap, view = current()
        _, item = item_for(snap, view, item_id)
        cached = thumbs_dir / f"{item['sha1']}.jpg"
        if not cached.is_file():
            try:
                image = imaging.open_rgb(snap.index.collection_root / item["path"], cfg.max_image_pixels)
            except imaging.UnreadableImage as error:
                raise ApiError(404, "file_missing", f"image {item_id} cannot be read: {error}") from None
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            thumbs_dir.mkdir(parents=True, exist_ok=True)
            tmp = thumbs_dir / f".{item['sha1']}.{os.getpid()}.{threading.get_ident()}.tmp"
            image.save(tmp, "JPEG", quality=85)
            os.replace(tmp, cached)
        return send_file(cached, mimetype="image/jpeg", max_age=86400)

    @app.post("/images")
    def add_image():
        require_admin()
        counts["add"] += 1
        upload = request.files.get("image")
        if upload is None:
            raise ApiError(400, "no_image", "send the image in a form field named 'image'")
        data = upload.read()
        image = decode_upload(data)  # refuse bad input before anything is stored
        try:
            metadata = json.loads(request.form.get("metadata") or "{}")
        except json.JSONDecodeError:
            raise ApiError(400, "bad_metadata", "metadata must be a JSON object") from None
        if not isinstance(metadata, dict):
            raise ApiError(400, "bad_metadata", "metadata must be a JSON object")
        name = request.form.get("name") or request.form.get("path") or upload.filename
        if name:
            metadata["original_name"] = name  # kept as data only: the stored file's name is ours
        snap, _ = current(allow_empty=True)
        try:
            with live.writer(cfg.index_dir) as conn:
                added = live.add_image(conn, snap.index, snap.embedder, data, image, metadata)
        except OSError as error:  # e.g. the collection is mounted read-only
            app.logger.error("cannot store an upload: %s", error)
            raise ApiError(
                507, "cannot_store", "the server cannot store new images (is the collection folder writable?)"
            ) from None
        compactor.maybe_start(snap, layer.view(snap.index))
        return jsonify({**added, "url": f"/images/{added['id']}", "metadata": metadata}), 201

    @app.delete("/images/<int:item_id>")
    def remove_image(item_id: int):
        require_admin()
        counts["remove"] += 1
        snap, view = current(allow_empty=True)
        with live.writer(cfg.index_dir) as conn:
            path = live.remove_item(conn, snap.index, view, item_id)
        if path is None:
            raise ApiError(404, "unknown_id", f"no image with id {item_id} in the index")
        compactor.maybe_start(snap, layer.view(snap.index))
        return jsonify({"deleted": item_id, "path": path})

    map_lock = threading.Lock()

    @app.get("/map")
    def collection_map():
        counts["map"] += 1
        snap, _ = current()  # the map shows the built index; live additions join it at compaction
        with map_lock:  # the first visit computes the t-SNE once per index version
            try:
                points = plots.map_points(snap.index)
            except ValueError as error:
                raise ApiError(409, "too_few_images", str(error)) from None
        classes = plots.collection_classes(snap.index.items) or []
        size = max(2.0, min(8.0, 40 / len(points) ** 0.5))  # % of the map's width: big when few
        return render_template(
            "map.html", points=points, classes=classes, snap=snap, class_of=plots.class_of, size=size
        )

    @app.get("/healthz")
    def healthz():
        snap = holder.get()
        if snap is None:
            return jsonify({"status": "unavailable", "reason": holder.load_error}), 503
        return jsonify({"status": "ok", "version": snap.index.version.name, "items": len(snap.index.items)})

    @app.get("/stats")
    def stats():
        snap = holder.get()
        return jsonify(
            {
                "worker_pid": os.getpid(),
                "uptime_s": round(time.time() - started, 1),
                "requests": dict(counts),
                "index": None
                if snap is None
                else {**snap.index.manifest, "version": snap.index.version.name},
                "load_error": holder.load_error,
            }
        )

    @app.get("/openapi.json")
    def openapi():
        return send_from_directory(app.static_folder, "openapi.json", mimetype="application/json")

    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        counts["errors"] += 1
        if _wants_json():
            return jsonify({"error": error.message, "code": error.code}), error.status
        return render_template("error.html", error=error), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {413: ("too_large", f"the upload is over the limit of {cfg.max_upload_bytes:,} bytes")}
        code, message = messages.get(
            error.code, ((error.name or "error").lower().replace(" ", "_"), error.description)
        )
        return api_error(ApiError(error.code or 400, code, message))

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        app.logger.exception("unexpected error")
        return api_error(ApiError(500, "internal", "something went wrong on our side; it has been logged"))

    app.extensions["imgsim"] = {"holder": holder, "config": cfg, "live": layer, "compactor": compactor}
    snap = holder.get()
    if snap is not None:  # resume a compaction that a crash or restart interrupted
        compactor.maybe_start(snap, layer.view(snap.index))
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the search service with Flask's development server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    config.add_flags(parser, "index_dir", "k")
    args = parser.parse_args(argv)
    create_app(config.load(args=args)).run(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
