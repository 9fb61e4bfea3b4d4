"""Every setting of imgsim in one place.

Each setting has a default here, can be overridden by an ``IMGSIM_<NAME>`` environment variable
(``IMGSIM_INDEX_DIR``, ``IMGSIM_TREES``, ...) and, in the scripts that use it, by a command-line
flag (``--index-dir``, ``--trees``, ...). Precedence: flag > environment > default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

ENV_PREFIX = "IMGSIM_"
# The string choices, as types (checked statically) and as the values a setting accepts.
Reduction = Literal["none", "autoencoder", "pca", "whiten"]
Metric = Literal["angular", "euclidean", "manhattan", "dot"]
Engine = Literal["local", "ray"]
RuntimeName = Literal["openvino", "tensorflow"]
Precision = Literal["auto", "f32", "bf16", "int8"]
Pooling = Literal["gem", "avg", "regional"]
Centring = Literal["mean", "none"]
Tta = Literal["none", "rotations"]
REDUCTIONS: tuple[Reduction, ...] = get_args(Reduction)
METRICS: tuple[Metric, ...] = get_args(Metric)
ENGINES: tuple[Engine, ...] = get_args(Engine)
RUNTIMES: tuple[RuntimeName, ...] = get_args(RuntimeName)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
POOLINGS: tuple[Pooling, ...] = get_args(Pooling)
CENTRINGS: tuple[Centring, ...] = get_args(Centring)
TTAS: tuple[Tta, ...] = get_args(Tta)
_CHOICES = {
    "reduce": REDUCTIONS,
    "metric": METRICS,
    "engine": ENGINES,
    "runtime": RUNTIMES,
    "precision": PRECISIONS,
    "pooling": POOLINGS,
    "centre": CENTRINGS,
    "tta": TTAS,
}
BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # RFC 6750's b64token: safe in headers and nginx
MIN_ADMIN_TOKEN = 16  # a shorter token can be guessed; it guards adding and deleting images
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

# Data shared beside the checkout (read-only): a real pretrained model and labelled photos, used
# by the quality tests, the benchmarks and the offline demo where ImageNet weights cannot be had.
SHARED_DIR = Path(
    os.environ.get(ENV_PREFIX + "SHARED_DIR", Path(__file__).resolve().parent.parent.parent / "shared")
)
SHARED_MODEL = SHARED_DIR / "models" / "efficientnet_lite0_imagenet.keras"
SHARED_FLOWERS = SHARED_DIR / "datasets" / "flowers5"


KEEPER_RULES = ("unframed", "pixels", "uncropped", "colour", "format", "oldest", "newest")


@dataclass(frozen=True)
class Config:
    """Settings shared by the indexer, the query CLI and the web service."""

    # Where built artefacts live: versions of the index, the `current` pointer, trained reducers.
    index_dir: Path = Path("rsc_files")
    # A keras.applications backbone name (inception_v3, vgg19, resnet50, mobilenet_v2,
    # efficientnetb0), an autoencoder trained on the collection itself (convae, simpleae), or the
    # path of a .keras model taking RGB 0..255 at its declared size.
    model: str = "inception_v3"
    # "imagenet" (downloaded once into the Keras cache) or the path of a local weights file.
    weights: str = "imagenet"
    # Side of the square model input in pixels; 0 means "take it from the model".
    image_size: int = 0
    batch_size: int = 32
    # Threads that decode images while the network runs on the previous batch; 0 = one per core.
    decode_workers: int = 0
    # The inference runtime: "openvino" (the Keras model converted once per model and cached, the
    # same vectors, faster; a service worker then needs no TensorFlow) or "tensorflow".
    runtime: RuntimeName = "openvino"
    # The arithmetic OpenVINO runs the network in: "auto" (the build picks the fastest precision
    # this CPU runs natively whose vectors agree with f32 on the collection's own sample, and
    # queries run at the index's precision; models/agreement.py), "f32", "bf16" or "int8" (NNCF
    # post-training quantization calibrated on the collection's photos).
    precision: Precision = "auto"
    # Photos of the collection that auto's agreement check embeds at each precision (and int8 is
    # calibrated on); int8 is considered only for collections of at least this many photos.
    precision_sample: int = 300
    # Where converted models are cached; empty = ~/.keras/imgsim-openvino (or $KERAS_HOME/...).
    model_cache: str = ""
    # Concurrent searches in one worker share one forward pass of at most this many images; 1 = off.
    # Larger passes buy little on CPUs (OpenVINO: 1.02-1.04x from batch 1 to 8) and cost memory.
    query_batch: int = 4
    # Save embeddings of an interrupted run every this many images, so a rerun resumes.
    checkpoint_every: int = 512
    reduce: Reduction = "none"
    dims: int = 256
    trees: int = 100
    metric: Metric = "angular"
    # Annoy's search_k: nodes inspected per query. -1 = the depth the build measured for
    # target_recall (recall.py, kept in the manifest); 0 = exact search; N = N nodes.
    search_k: int = -1
    # Recall@10 against exact search that a build tunes search_k for, measured with edited copies
    # (edits.CALIBRATION) of recall_sample of the collection's images.
    target_recall: float = 0.98
    recall_sample: int = 50
    # How a photo becomes a vector (docs/benchmarks.md section 9 measured each):
    # "gem" pools the last feature map with a generalised mean (p = 3), "avg" averages it,
    # "regional" pools it by GeM in R-MAC's 14 regions and sums them (models/gem.py).
    pooling: Pooling = "gem"
    # Trim uniform borders (a screenshot's frame) off every image before embedding it.
    trim_borders: bool = True
    # "mean" subtracts the collection's mean direction from every vector before indexing; "none"
    # keeps the vectors as the network gives them.
    centre: Centring = "mean"
    # query-side test-time augmentation: "rotations" also searches with the query turned by
    # 90, 180 and 270 degrees (4 passes per query) and keeps each item's best distance.
    tta: Tta = "none"
    # Autoencoder training: the vector reducer, and the pixel autoencoders (--model convae/simpleae).
    epochs: int = 50
    ae_epochs: int = 20
    ae_train_images: int = 5000
    # Segments (index/segments.py): the largest segment a build or a merge writes (a bigger first
    # build is written as several), and how many segments of one size tier trigger their merge.
    segment_items: int = 250_000
    segments_per_tier: int = 10
    # Old index versions kept beside `current` (workers may still be reading them).
    keep_versions: int = 3
    # Results a search returns when it does not say.
    k: int = 10
    # The most results one request may ask for.
    max_k: int = 100
    # Uploads: bytes per request (a larger one gets 413).
    max_upload_bytes: int = 20 * 1024 * 1024
    # Decoded pixels per image, uploaded or in the collection (the decompression-bomb guard).
    max_image_pixels: int = 64_000_000
    # A collection file larger than this is skipped and reported, never read (a 64 Mpx TIFF is 192 MB).
    max_file_bytes: int = 256 * 1024 * 1024
    # Seconds between a web worker's checks for a new index version.
    reload_interval: float = 2.0
    # Bearer token for POST /images and DELETE /images/<id>; empty = those endpoints are off.
    admin_token: str = ""
    # How a duplicate group's copy to keep is chosen: rules in order, separated by commas
    # (KEEPER_RULES; duplicates/keeper.py says each), the lowest id breaking a last tie.
    keeper_rules: str = "unframed,pixels,uncropped,colour,format,oldest"
    # Live additions + deletions after which the service rebuilds the Annoy index in the background.
    compact_threshold: int = 1000
    # The live layer's database: empty = SQLite in the index directory (one machine); a
    # postgresql://user@host:port/db URL = PostgreSQL, shared by several replicas.
    live_url: str = ""
    # Where the embedding runs: "local" (in this process) or "ray" (a Ray cluster: ray_address
    # empty = start one on this machine, "auto" or "ray://host:10001" = join one).
    engine: Engine = "local"
    ray_address: str = ""
    ray_actors: int = 0  # embedding actors; 0 = as many as the cluster's CPUs allow
    ray_cpus_per_actor: float = 1.0
    # Where gunicorn listens, and where nginx listens in front of it (proxy.py, make serve-proxy).
    bind: str = "127.0.0.1:8000"
    proxy_bind: str = "127.0.0.1:8080"
    # HTTPS in nginx: a certificate and its key (PEM files); both set = nginx also listens with TLS
    # on proxy_tls_bind, so that the admin token does not cross the network in clear.
    tls_cert: str = ""
    tls_key: str = ""
    proxy_tls_bind: str = "127.0.0.1:8443"

    def __post_init__(self) -> None:
        token = self.admin_token.strip()
        object.__setattr__(self, "admin_token", token)  # " " is no token: the admin routes are off
        make_one = "make one with python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        if 0 < len(token) < MIN_ADMIN_TOKEN:
            raise ConfigError(
                f"admin_token (IMGSIM_ADMIN_TOKEN) must be at least {MIN_ADMIN_TOKEN} characters, "
                f"got {len(token)}: {make_one}"
            )
        if token and not BEARER_TOKEN.fullmatch(token):
            raise ConfigError(
                "admin_token (IMGSIM_ADMIN_TOKEN) may hold only letters, digits and -._~+/ "
                f"(then =), as a bearer token does: {make_one}"
            )

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


class ConfigError(ValueError):
    """A setting has a value imgsim cannot use; the message names the setting and what it takes.

    Library code raises it (a gunicorn worker then logs it); the scripts turn it into a usage error.
    """


def _field_type(field: dataclasses.Field) -> type:
    default = field.default
    return type(default) if not isinstance(default, Path) else Path


def _parse(field: dataclasses.Field, raw: str, source: str) -> object:
    kind = _field_type(field)
    if kind is bool:
        if raw.strip().lower() not in _TRUE + _FALSE:
            raise ConfigError(f"{source}: expected on or off for {field.name}, got {raw!r}")
        return raw.strip().lower() in _TRUE
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{source}: expected {kind.__name__} for {field.name}, got {raw!r}") from None
    choices = _CHOICES.get(field.name)
    if choices is not None and value not in choices:
        raise ConfigError(f"{source}: {field.name} must be one of {', '.join(choices)}, got {raw!r}")
    if field.name == "keeper_rules":
        rules = [rule.strip() for rule in str(value).split(",") if rule.strip()]
        if not rules or len(set(rules)) != len(rules) or not set(rules) <= set(KEEPER_RULES):
            raise ConfigError(
                f"{source}: keeper_rules are some of {', '.join(KEEPER_RULES)}, each once, in order; "
                f"got {raw!r}"
            )
    if field.name == "target_recall" and not 0 < value <= 1:
        raise ConfigError(f"{source}: target_recall must be in (0, 1], got {raw!r}")
    if field.name == "search_k" and value < -1:
        raise ConfigError(
            f"{source}: search_k must be -1 (the build's depth), 0 (exact) or a count, got {raw!r}"
        )
    return value


def load(environ: Mapping[str, str] | None = None, args: argparse.Namespace | None = None) -> Config:
    """Build the effective configuration: defaults, then IMGSIM_* variables, then CLI flags."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in fields(Config):
        env_name = ENV_PREFIX + field.name.upper()
        if environ.get(env_name, "") != "":
            values[field.name] = _parse(field, environ[env_name], env_name)
        flag_value = getattr(args, field.name, None) if args is not None else None
        if flag_value is not None:
            values[field.name] = _parse(field, str(flag_value), "--" + field.name.replace("_", "-"))
    return Config(**values)


HELP = {
    "index_dir": "directory of the built index (default %(default)s)",
    "model": "backbone name or path to a .keras model (default %(default)s)",
    "weights": "'imagenet', a weights file, or 'none' = random (timing only) (default %(default)s)",
    "image_size": "model input side in pixels; 0 = from the model (default %(default)s)",
    "batch_size": "images per forward pass (default %(default)s)",
    "decode_workers": "threads decoding images ahead of the network; 0 = one per core (default %(default)s)",
    "runtime": "inference runtime: openvino or tensorflow (default %(default)s)",
    "precision": "network arithmetic: auto, f32, bf16 or int8 (default %(default)s)",
    "precision_sample": "photos auto checks agreement with f32 on (default %(default)s)",
    "model_cache": "folder for converted models; empty = beside the Keras cache",
    "query_batch": "concurrent searches sharing one forward pass, at most (default %(default)s)",
    "checkpoint_every": "save progress every N embedded images (default %(default)s)",
    "reduce": "dimension reduction: none, autoencoder, pca or whiten (PCA whitening) (default %(default)s)",
    "dims": "reduced dimensions (default %(default)s)",
    "trees": "Annoy trees (default %(default)s)",
    "metric": "Annoy metric (default %(default)s)",
    "search_k": "Annoy search_k; -1 = the depth the build chose, 0 = exact search (default %(default)s)",
    "target_recall": "recall@10 against exact search that the build tunes search_k for (default %(default)s)",
    "recall_sample": "images whose edited copies measure that recall (default %(default)s)",
    "pooling": "pooling of the last feature map: gem, avg or regional (default %(default)s)",
    "trim_borders": "trim uniform borders before embedding: on or off (default %(default)s)",
    "centre": "subtract the collection's mean vector: mean or none (default %(default)s)",
    "tta": "query-side test-time augmentation: none or rotations (default %(default)s)",
    "epochs": "autoencoder training epochs, with early stopping (default %(default)s)",
    "ae_epochs": "convae/simpleae training epochs, with early stopping (default %(default)s)",
    "ae_train_images": "convae/simpleae train on at most this many images (default %(default)s)",
    "segment_items": "largest segment a build or merge writes, in items (default %(default)s)",
    "segments_per_tier": "segments of one size tier that are merged into one (default %(default)s)",
    "keep_versions": "old index versions kept (default %(default)s)",
    "k": "number of results (default %(default)s)",
    "reload_interval": "seconds between checks for a new index version (default %(default)s)",
    "bind": "address gunicorn listens on (default %(default)s)",
    "proxy_bind": "address nginx listens on (default %(default)s)",
    "tls_cert": "PEM certificate for nginx's HTTPS listener; with --tls-key, HTTPS is on",
    "tls_key": "PEM private key of --tls-cert",
    "proxy_tls_bind": "address nginx listens on with TLS (default %(default)s)",
    "max_upload_bytes": "largest upload accepted, in bytes (default %(default)s)",
    "max_file_bytes": "largest collection file a build reads, in bytes (default %(default)s)",
    "keeper_rules": "how a duplicate group's copy to keep is chosen, in order (default %(default)s)",
    "engine": "where to embed: local (this process) or ray (a Ray cluster) (default %(default)s)",
    "ray_address": "Ray cluster to join (auto, ray://host:10001); empty = start one here",
    "ray_actors": "embedding actors on Ray; 0 = fill the cluster (default %(default)s)",
    "ray_cpus_per_actor": "CPUs each Ray actor takes (default %(default)s)",
    "live_url": "postgresql://user@host:port/db for the live layer; empty = SQLite in the index directory",
}


# The settings of a build, which every command that builds an index takes as flags (index, evaluate)
BUILD_FLAGS = (
    "index_dir",
    "model",
    "weights",
    "image_size",
    "batch_size",
    "max_file_bytes",
    "runtime",
    "precision",
    "precision_sample",
    "model_cache",
    "pooling",
    "trim_borders",
    "centre",
    "reduce",
    "dims",
    "trees",
    "epochs",
    "target_recall",
    "recall_sample",
)


def to_environ(cfg: Config) -> dict[str, str]:
    """The IMGSIM_* variables that give a child process (gunicorn, a worker) this configuration."""
    return {ENV_PREFIX + f.name.upper(): str(getattr(cfg, f.name)) for f in fields(Config)}


def add_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """Add ``--name`` flags for the given settings; their help shows the effective default."""
    try:
        defaults = load()
    except ConfigError:  # --help must work even with a bad variable; parse_args then names it
        defaults = Config()
    for name in names:
        field = next(f for f in fields(Config) if f.name == name)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=str,
            default=None,
            metavar=name.upper(),
            help=HELP[name] % {"default": getattr(defaults, field.name)},
        )


def parse_args(
    parser: argparse.ArgumentParser, argv: list[str] | None = None
) -> tuple[argparse.Namespace, Config]:
    """Parse a script's command line and build its configuration; a bad value is a usage error."""
    args = parser.parse_args(argv)
    try:
        return args, load(args=args)
    except ConfigError as error:
        parser.error(str(error))
        raise  # parser.error exits; this line only tells type checkers so


SECRETS = ("admin_token",)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*(@)|(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def redacted(name: str, value: object) -> str:
    """A setting's value as it may be shown: the admin token only as set or not, and a database URL
    without its password (``postgresql://imgsim:***@db/imgsim``, ``password=***``)."""
    if name in SECRETS:
        return "(set)" if value else ""
    if name == "live_url":
        return _URL_PASSWORD.sub(lambda m: f"{m[1]}***{m[2]}" if m[1] else f"{m[3]}***", str(value))
    return str(value)


def describe(cfg: Config) -> list[dict[str, str]]:
    """Every setting with its default, its variable, its flag (where a script has one) and its value."""
    rows = []
    for field in fields(Config):
        value = redacted(field.name, getattr(cfg, field.name))
        rows.append(
            {
                "setting": field.name,
                "default": str(field.default),
                "variable": ENV_PREFIX + field.name.upper(),
                "flag": "--" + field.name.replace("_", "-") if field.name in HELP else "",
                "value": value,
            }
        )
    return rows


def decode_threads(cfg: Config) -> int:
    """Threads that decode images: the setting, or one per core."""
    return cfg.decode_workers or os.cpu_count() or 2
