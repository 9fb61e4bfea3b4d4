"""``make demo`` as a newcomer runs it: in a copy of the checkout, with its relative default paths.

The copy holds what a clone holds (git's tracked and not-ignored files, their times kept), make's
``.venv`` linked in (installed already, so make only runs the recipe) and ``../shared`` beside it.
The service listens on a free loopback port (IMGSIM_BIND, the README's way of moving it); its log
is kept for the tests to read.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import ROOT
from imgsim import config

ACCESS_LINE = re.compile(r'"[A-Z]+ (\S+) HTTP/[\d.]+" (\d{3}) ')


@dataclass
class Demo:
    checkout: Path  # the copy, where every README command runs
    url: str  # where its service answers
    log_path: Path
    environ: dict[str, str]  # what the commands run with: the user's, less any IMGSIM_* setting

    def sample(self, name: str) -> Path:
        return self.checkout / "rsc_files" / "sample_images" / name

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def server_errors(self) -> list[str]:
        """Requests the service answered with a 5xx, and any traceback it logged."""
        lines = self.log().splitlines()
        failed = [line for line in lines if (m := ACCESS_LINE.search(line)) and m.group(2).startswith("5")]
        return failed + [line for line in lines if line.startswith("Traceback")]


def screenshot_dir(fallback: Path) -> Path:
    """Where screenshots go: IMGSIM_SCREENSHOTS (``docs`` refreshes the README's picture), else
    the test's own folder."""
    chosen = os.environ.get("IMGSIM_SCREENSHOTS")
    folder = (ROOT / chosen) if chosen else fallback
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def copy_checkout(parent: Path) -> Path:
    """A copy of this checkout's files as a clone has them, with .venv and ../shared linked."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    checkout = parent / "main"
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / name)
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    (parent / "shared").symlink_to(config.SHARED_DIR.resolve())
    return checkout


def newcomer_environ(port: int) -> dict[str, str]:
    """This process's environment without settings of ours or of an outer make, on ``port``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IMGSIM_")}
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PROMETHEUS_MULTIPROC_DIR", "TF_CPP_MIN_LOG_LEVEL"):
        environ.pop(name, None)
    return environ | {"IMGSIM_BIND": f"127.0.0.1:{port}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running(parent: Path, timeout: float = 600) -> Iterator[Demo]:
    """``make demo`` in a fresh copy until its service answers /healthz; stopped afterwards."""
    checkout = copy_checkout(parent)
    port = free_port()
    environ = newcomer_environ(port)
    log_path = parent / "demo.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["make", "demo"],
            cwd=checkout,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    demo = Demo(checkout, f"http://127.0.0.1:{port}", log_path, environ)
    try:
        _wait_healthy(demo, process, timeout)
        yield demo
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_healthy(demo: Demo, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"make demo exited with {process.returncode}:\n{demo.log()[-4000:]}")
        try:
            with urllib.request.urlopen(demo.url + "/healthz", timeout=5) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise AssertionError(f"make demo did not serve within {timeout:.0f} s:\n{demo.log()[-4000:]}")
