"""Run imgsim behind nginx, the buffering proxy that gunicorn's deployment guide asks for.

    imgsim proxy              gunicorn on IMGSIM_BIND, nginx on IMGSIM_PROXY_BIND, until Ctrl+C
    imgsim proxy --print      print deploy/nginx.conf filled in, for a system-wide nginx

Without nginx, four clients sending their uploads at one byte a second hold every gunicorn thread;
with it, nginx reads each request whole before gunicorn sees it. Needs Debian's ``nginx`` package
(``make system`` installs it); ``make serve`` runs gunicorn alone, as before.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from imgsim import config
from imgsim.serve.resources import CHECKOUT, resource

TEMPLATE = resource("deploy/nginx.conf")
GUNICORN = [sys.executable, "-m", "gunicorn"]
ADMIN_METHODS = ("GET", "HEAD", "POST", "DELETE")  # requests with the right token, never limited
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class ProxyError(RuntimeError):
    """nginx is missing or would not start; the message says what to do."""


def find_nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        raise ProxyError("nginx is not installed: run `make system` (Debian's nginx package) first")
    return found


def render(cfg: config.Config, run_dir: Path) -> str:
    """deploy/nginx.conf with this configuration's addresses, upload limit and paths."""
    # Started as root, nginx would run its workers as "nobody", who cannot use a private run_dir:
    # they keep this user instead. Started as anyone else, nginx runs as that user anyway.
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    values = {
        "USER": user,
        "RUN_DIR": str(run_dir),
        **tls_values(cfg),
        "UPSTREAM": cfg.bind,
        "STATIC_DIR": str(resource("static")),
        "MAX_UPLOAD_BYTES": str(cfg.max_upload_bytes),
        "MAX_UPLOAD_TEXT": f"{cfg.max_upload_bytes:,}",
        "ADMIN_EXACT": "".join(f'"{m}:Bearer {cfg.admin_token}" "";' for m in ADMIN_METHODS)
        if cfg.admin_token
        else "",
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text


HSTS_SECONDS = 31_536_000  # a year: browsers then never try plain HTTP for this host


def tls_values(cfg: config.Config) -> dict[str, str]:
    """The server's listener: plain HTTP, or, where a certificate and its key are set, HTTPS with
    HSTS, plain HTTP then answering only with a redirect (the admin token never crosses in clear)."""
    if not (cfg.tls_cert and cfg.tls_key):
        if cfg.tls_cert or cfg.tls_key:
            raise ProxyError("set both tls_cert and tls_key (IMGSIM_TLS_CERT, IMGSIM_TLS_KEY), or neither")
        return {"LISTEN": f"listen {cfg.proxy_bind};", "REDIRECT": "", "HSTS": ""}
    port = cfg.proxy_tls_bind.rsplit(":", 1)[-1]
    target = "https://$host" + ("" if port == "443" else f":{port}") + "$request_uri"
    return {
        "LISTEN": (
            f"listen {cfg.proxy_tls_bind} ssl;\n"
            f"        ssl_certificate {Path(cfg.tls_cert).resolve()};\n"
            f"        ssl_certificate_key {Path(cfg.tls_key).resolve()};\n"
            "        ssl_protocols TLSv1.2 TLSv1.3;\n"
            "        ssl_session_cache shared:tls:10m;"
        ),
        "REDIRECT": f"server {{\n        listen {cfg.proxy_bind};\n        return 301 {target};\n    }}",
        "HSTS": f'add_header Strict-Transport-Security "max-age={HSTS_SECONDS}" always;',
    }


def private_run_dir(run_dir: Path) -> None:
    """``run_dir`` as a folder only this user can enter: made with mode 0700, or, where it exists,
    refused unless this user owns it (a folder another local user made first in /tmp would let
    them read the configuration, which holds the admin token, or swap its files)."""
    try:
        run_dir.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        found = run_dir.lstat()
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid():
            raise ProxyError(
                f"{run_dir} exists and is not this user's folder: choose another --run-dir"
            ) from None
    os.chmod(run_dir, 0o700)


def _write_private(path: Path, text: str) -> None:
    """A file only this user can read (mode 0600), never written through a link."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def start_nginx(cfg: config.Config, run_dir: Path) -> subprocess.Popen:
    """nginx in the foreground with its configuration, pid, logs and buffers all in ``run_dir``."""
    nginx = find_nginx()
    private_run_dir(run_dir)
    for name in TEMP_DIRS:
        (run_dir / name).mkdir(exist_ok=True)
    conf = run_dir / "nginx.conf"
    _write_private(conf, render(cfg, run_dir))
    command = [nginx, "-p", str(run_dir), "-e", "stderr", "-c", str(conf)]
    check = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True)
    if check.returncode != 0:
        raise ProxyError(f"nginx refused its configuration: {check.stderr.strip()}")
    return subprocess.Popen(command)


def start_gunicorn(cfg: config.Config, environ: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    """gunicorn serving the app with this configuration (on top of ``environ``, default ours)."""
    environ = {**(os.environ if environ is None else environ), **config.to_environ(cfg)}
    # the package is importable from a checkout as from an installed wheel; the working folder
    # stays the caller's, where relative settings (rsc_files) point
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), environ.get("PYTHONPATH")]))
    command = [*GUNICORN, "-c", "python:imgsim.serve.gunicorn_conf", "imgsim.serve.app:create_app()"]
    return subprocess.Popen(command, env=environ, **popen)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--print", action="store_true", help="print the nginx configuration and exit")
    parser.add_argument("--run-dir", type=Path, help="where nginx keeps its pid, logs and buffers")
    settings = ("bind", "proxy_bind", "max_upload_bytes", "tls_cert", "tls_key", "proxy_tls_bind")
    config.add_flags(parser, *settings)
    args, cfg = config.parse_args(parser, argv)
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="imgsim-nginx-"))
    try:
        if args.print:
            print(render(cfg, run_dir))
            return 0
        nginx = start_nginx(cfg, run_dir)
    except ProxyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    gunicorn = start_gunicorn(cfg)
    url = f"http://{cfg.proxy_bind}/"
    print(f"imgsim: open {url} (nginx and gunicorn log here); Ctrl+C stops both", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while nginx.poll() is None and gunicorn.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                gunicorn.wait(timeout=1)
    except KeyboardInterrupt:
        pass
    finally:
        for process in (gunicorn, nginx):
            if process.poll() is None:
                process.send_signal(signal.SIGQUIT if process is nginx else signal.SIGTERM)
        for process in (gunicorn, nginx):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0 if gunicorn.returncode in (0, None, -signal.SIGTERM) else 1


if __name__ == "__main__":
    sys.exit(main())
