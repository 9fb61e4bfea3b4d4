"""Where the service's files are: ``templates/``, ``static/`` and ``deploy/`` stay at the top of the
checkout (the card's layout), and an installed wheel carries copies of them inside the package."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # imgsim/
CHECKOUT = PACKAGE.parent


def resource(name: str) -> Path:
    """The folder or file ``name`` (``templates``, ``static``, ``deploy/nginx.conf``), installed or not."""
    installed = PACKAGE / name
    return installed if installed.exists() else CHECKOUT / name
