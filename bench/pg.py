"""A throwaway PostgreSQL server for the tests and the benchmark (never for production).

Debian's postgresql package provides the programs; the server lives in a temporary directory on a
free loopback port and is gone when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.common import free_port


def postgres_bin() -> Path | None:
    """The directory of Debian's PostgreSQL server programs (initdb, pg_ctl), newest first."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return candidates[-1].parent if candidates else None


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free loopback port; yields the URL of its admin database.

    initdb refuses to run as root: as root, the server runs as Debian's ``postgres`` user.
    """
    programs = postgres_bin()
    if programs is None:
        raise RuntimeError("PostgreSQL is not installed (scripts/install-system.sh installs it)")
    home = Path(tempfile.mkdtemp(prefix="imgsim-pg-"))
    data, port = home / "data", free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(home, "postgres")
    try:
        run = [*as_user, str(programs / "initdb"), "-D", str(data), "-U", "imgsim", "--auth=trust"]
        subprocess.run([*run, "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c max_connections=400"
        start = [*as_user, str(programs / "pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-o", options]
        subprocess.run([*start, "-w", "start"], check=True, capture_output=True)
        try:
            yield f"postgresql://imgsim@127.0.0.1:{port}/postgres"
        finally:
            stop_it = [*as_user, str(programs / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
            subprocess.run(stop_it, capture_output=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def new_database(admin_url: str, name: str) -> str:
    """A fresh database on the throwaway server; its URL."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name
