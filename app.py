"""The search service (= ``imgsim serve``).

    gunicorn -c gunicorn.conf.py 'app:create_app()'    production: one worker per core
    python app.py [--port 5000]                         Flask's development server

``create_app`` is imgsim/serve/app.py; the blueprints are imgsim/serve/web/.
"""

import sys

from imgsim.cli.serve import main as serve
from imgsim.serve.app import create_app

__all__ = ["create_app", "main"]


def main(argv: list[str] | None = None) -> int:
    return serve(["--dev", *(sys.argv[1:] if argv is None else argv)], prog="app.py")


if __name__ == "__main__":
    sys.exit(main())
