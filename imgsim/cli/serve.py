"""``imgsim serve`` (``python app.py`` with ``--dev``): run the search service.

Without ``--dev`` it runs gunicorn with the package's settings (imgsim/serve/gunicorn_conf.py,
what ``gunicorn -c gunicorn.conf.py 'app:create_app()'`` runs from a checkout); with ``--dev``
Flask's development server, one process, for trying things out.
"""

from __future__ import annotations

import argparse
import os
import sys

from imgsim import config


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the search service: gunicorn, or Flask's development server with --dev."
    )
    parser.add_argument("--dev", action="store_true", help="Flask's development server instead of gunicorn")
    parser.add_argument("--host", help="address to listen on (default: 127.0.0.1; gunicorn: from --bind)")
    parser.add_argument("--port", type=int, help="port to listen on (default: 5000; gunicorn: from --bind)")
    config.add_flags(parser, "index_dir", "k", "search_k", "tta", "precision", "bind")
    args, cfg = config.parse_args(parser, argv)
    if args.dev:
        from imgsim.serve.app import create_app

        create_app(cfg).run(host=args.host or "127.0.0.1", port=args.port or 5000)
        return 0
    host, _, port = cfg.bind.rpartition(":")
    bind = f"{args.host or host}:{args.port or port}"
    os.environ.update(config.to_environ(cfg.replace(bind=bind)))  # the workers read the same settings
    from gunicorn.app.wsgiapp import run

    sys.argv = ["gunicorn", "-c", "python:imgsim.serve.gunicorn_conf", "imgsim.serve.app:create_app()"]
    return run()


if __name__ == "__main__":
    sys.exit(main())
