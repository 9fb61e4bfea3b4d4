"""Real servers for the tests that need one: gunicorn running the app, nginx in front of it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench.common import free_port  # noqa: F401 (one of the tests' servers' helpers)
from bench.pg import new_database, postgres, postgres_bin  # noqa: F401 (the tests' servers too)
from imgsim import config
from imgsim.serve import proxy


class _Unfollowed(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (nginx's plain listener redirects to HTTPS where TLS is on)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_Unfollowed)


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    """Wait until ``url`` answers at all (any status, a redirect too): the server has booted."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before answering {url}")
        try:
            _OPENER.open(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answered at {url} within {seconds} s")


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_gunicorn(
    cfg: config.Config, workers: int = 1, threads: int = 2, log: Path | None = None
) -> subprocess.Popen:
    """gunicorn serving the app on ``cfg.bind``, in a process group of its own (see kill_group)."""
    environ = {**os.environ, "WEB_CONCURRENCY": str(workers), "IMGSIM_THREADS": str(threads)}
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn.conf.py makes a fresh one per server
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it)
    try:
        return proxy.start_gunicorn(
            cfg, environ, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        if log:
            output.close()


def kill_group(process: subprocess.Popen) -> None:
    """kill -9 of gunicorn's master and every worker at once, as a power cut would."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def gunicorn(
    cfg: config.Config, workers: int = 1, threads: int = 2, log: Path | None = None
) -> Iterator[str]:
    """gunicorn serving the app on ``cfg.bind``; yields its base URL."""
    process = start_gunicorn(cfg, workers, threads, log)
    url = f"http://{cfg.bind}"
    try:
        wait_until_up(url + "/healthz", process)
        yield url
    finally:
        stop(process)


@contextlib.contextmanager
def nginx(cfg: config.Config, run_dir: Path) -> Iterator[str]:
    """nginx with deploy/nginx.conf on ``cfg.proxy_bind`` in front of ``cfg.bind``; yields its URL."""
    process = proxy.start_nginx(cfg, run_dir)
    url = f"http://{cfg.proxy_bind}"
    try:
        wait_until_up(url + "/static/style.css", process)
        yield url
    finally:
        stop(process, signal.SIGQUIT)
