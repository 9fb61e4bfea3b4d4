"""The service under gunicorn, alone and behind nginx (deploy/nginx.conf): what only real servers show."""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

import servers
from bench import soak
from helpers import TOKEN, png, quiet_build, tiny_settings, write_images
from imgsim import config
from imgsim.serve import proxy

pytestmark = pytest.mark.slow  # real gunicorn and nginx servers


def _nginx_installed() -> bool:
    try:
        proxy.find_nginx()
    except proxy.ProxyError:
        return False
    return True


@dataclass
class Stack:
    direct: str  # gunicorn itself: one worker, two threads
    proxied: str  # nginx in front of it
    cfg: config.Config


@pytest.fixture(scope="module")
def gunicorn_only(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("served")
    write_images(root / "photos", 12)
    cfg = tiny_settings(root / "index", tiny_model).replace(
        max_upload_bytes=200_000,
        admin_token=TOKEN,
        compact_threshold=10,
        reload_interval=0.2,
        bind=f"127.0.0.1:{servers.free_port()}",
        proxy_bind=f"127.0.0.1:{servers.free_port()}",
    )
    quiet_build(root / "photos", cfg)
    with servers.gunicorn(cfg, workers=1, threads=2, log=root / "gunicorn.log") as url:
        yield url, cfg, root


@pytest.fixture(scope="module")
def stack(gunicorn_only):
    if not _nginx_installed():
        pytest.skip("needs Debian's nginx (scripts/install-system.sh installs it)")
    direct, cfg, root = gunicorn_only
    with servers.nginx(cfg, root / "nginx") as proxied:
        yield Stack(direct, proxied, cfg)


def post(url: str, body, timeout: float = 30, **headers) -> tuple[int, dict]:
    """POST with Python's standard library, which sends the whole body before reading the answer."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "image/png", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def searches(url: str, timeout: float) -> bool:
    """Whether a search by upload is answered within ``timeout`` seconds."""
    try:
        return post(url + "/search?k=2", png(), timeout=timeout)[0] == 200
    except TimeoutError:
        return False
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            return False
        raise


@contextlib.contextmanager
def slow_uploads(url: str, count: int):
    """``count`` connections that send their headers, then their body at one byte per second."""
    host, port = url.removeprefix("http://").split(":")
    stop = threading.Event()
    connections = []

    def trickle(connection: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while not stop.wait(1):
                connection.sendall(b"x")

    for _ in range(count):
        connection = socket.create_connection((host, int(port)))
        connection.sendall(
            f"POST /search HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
            "Content-Length: 1000\r\n\r\n".encode()
        )
        connections.append(connection)
    threads = [threading.Thread(target=trickle, args=(c,), daemon=True) for c in connections]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # every connection has reached its server and is sending its body
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for connection in connections:
            connection.close()


def test_an_oversized_upload_gets_its_413_even_from_a_client_that_sends_it_all_first(gunicorn_only):
    """urllib sent 30 MB, the server closed after the headers, and urllib saw only a broken pipe."""
    url, cfg, _ = gunicorn_only
    status, body = post(url + "/search", bytes(30_000_000))
    assert (status, body["code"]) == (413, "too_large")
    assert "200,000 bytes" in body["error"]


def test_an_oversized_chunked_upload_is_a_413_not_a_truncated_image(gunicorn_only):
    """Without a Content-Length the body was cut at the limit and then refused as 'not an image'."""
    url, _, _ = gunicorn_only
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    chunks = (bytes(100_000) for _ in range(30))
    headers = {"Content-Type": "image/png"}
    connection.request("POST", "/search", body=chunks, headers=headers, encode_chunked=True)
    reply = connection.getresponse()
    assert (reply.status, json.load(reply)["code"]) == (413, "too_large")


def test_four_slow_uploads_stop_gunicorn_alone_but_not_behind_nginx(stack):
    with slow_uploads(stack.direct, 4):
        assert not searches(stack.direct, timeout=3)  # every request thread waits on a slow body
    with slow_uploads(stack.proxied, 4):
        assert all(searches(stack.proxied, timeout=10) for _ in range(3))


def test_nginx_refuses_an_oversized_upload_with_the_same_json_error(stack):
    status, body = post(stack.proxied + "/search", bytes(30_000_000))
    assert (status, body["code"]) == (413, "too_large")
    assert "200,000 bytes" in body["error"]


def test_nginx_serves_static_files_itself_and_passes_everything_else_on(stack):
    with urllib.request.urlopen(stack.proxied + "/static/style.css") as reply:
        assert reply.headers["Content-Type"] == "text/css"
        assert reply.headers["Cache-Control"] == "max-age=3600"  # nginx's expires, not Flask's
    with urllib.request.urlopen(stack.proxied + "/healthz") as reply:
        assert json.load(reply)["status"] == "ok"
    status, body = post(stack.proxied + "/search?k=2", png())
    assert status == 200 and len(body["results"]) == 2


def test_nginx_and_the_app_both_send_the_security_headers(stack):
    for path in ("/static/style.css", "/duplicates?format=html", "/healthz"):
        with urllib.request.urlopen(stack.proxied + path) as reply:
            assert reply.headers["X-Frame-Options"] == "DENY", path
            assert reply.headers["X-Content-Type-Options"] == "nosniff", path
            assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"], path
            assert len(reply.headers.get_all("X-Frame-Options")) == 1, path  # not twice through nginx


def test_nginx_slows_down_guessing_the_admin_token_but_not_the_admin(stack):
    def deletes(token: str) -> list[int]:
        statuses = []
        for _ in range(40):
            request = urllib.request.Request(
                stack.proxied + "/images/99999", method="DELETE", headers={"Authorization": f"Bearer {token}"}
            )
            try:
                urllib.request.urlopen(request, timeout=10)
            except urllib.error.HTTPError as error:
                statuses.append(error.code)
        return statuses

    began = time.monotonic()
    guesses = deletes("guess")
    elapsed = time.monotonic() - began
    # what the limit guarantees however slow the machine: a burst of 20, then 2 a second
    assert guesses.count(401) <= 20 + 2 * elapsed + 1 and guesses.count(401) + guesses.count(429) == 40
    assert elapsed > 8 or guesses.count(429) > 0
    assert deletes(TOKEN) == [404] * 40  # the admin's own requests are never slowed
    with urllib.request.urlopen(stack.proxied + "/images/1") as reply:  # nor is reading
        assert reply.status == 200


def test_nginx_never_slows_down_searches_by_upload_without_a_token(stack):
    """A search by upload is a POST: the guess limit took every anonymous POST for a guess, so one
    address (a script, an office behind one NAT) got 429 past 20 searches and 2 a second."""
    began = time.monotonic()
    statuses = [post(stack.proxied + "/search?k=2", png())[0] for _ in range(40)]
    assert statuses == [200] * 40
    assert time.monotonic() - began < 19  # faster than the limit would have let through


def test_nginx_slows_down_guessing_the_token_on_stats_too(stack):
    """/stats answers more to the token: presenting wrong ones there was never limited (item 12)."""
    codes, began = [], time.monotonic()
    for _ in range(40):
        request = urllib.request.Request(stack.proxied + "/stats", headers={"Authorization": "Bearer guess"})
        try:
            urllib.request.urlopen(request, timeout=10).close()
            codes.append("ok")
        except urllib.error.HTTPError as error:
            codes.append(json.loads(error.read())["code"])
    assert "ok" not in codes[10:]  # the app itself refuses an address after 10 wrong tokens a minute
    assert time.monotonic() - began > 8 or "too_many_connections" in codes  # nginx's limit: 2 a second
    with urllib.request.urlopen(stack.proxied + "/stats") as reply:  # asking without a token is not guessing
        assert "collection_root" not in json.loads(reply.read())["index"]


def test_nginx_serves_https_with_the_configured_certificate(gunicorn_only, tmp_path):
    """nginx listened on plain HTTP only: the admin token crossed the network in clear."""
    if not _nginx_installed() or shutil.which("openssl") is None:
        pytest.skip("needs Debian's nginx and openssl (scripts/install-system.sh installs them)")
    _, cfg, root = gunicorn_only
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ports = {name: f"127.0.0.1:{servers.free_port()}" for name in ("proxy_bind", "proxy_tls_bind")}
    tls = cfg.replace(tls_cert=str(cert), tls_key=str(key), **ports)
    with servers.nginx(tls, tmp_path / "nginx"):
        trusted = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"https://{tls.proxy_tls_bind}/healthz", context=trusted) as reply:
            assert json.load(reply)["status"] == "ok"
            assert reply.headers["X-Frame-Options"] == "DENY"
            # and then browsers never try plain HTTP, which itself only redirects (item 13)
            assert reply.headers["Strict-Transport-Security"] == "max-age=31536000"
        host, port = tls.proxy_bind.split(":")
        plain = http.client.HTTPConnection(host, int(port), timeout=10)
        plain.request("GET", "/stats?x=1", headers={"Authorization": "Bearer not-sent-in-clear"})
        moved = plain.getresponse()
        tls_port = tls.proxy_tls_bind.split(":")[1]
        assert moved.status == 301 and moved.headers["Location"] == f"https://127.0.0.1:{tls_port}/stats?x=1"
        plain.close()
    with pytest.raises(proxy.ProxyError, match="both tls_cert and tls_key"):
        proxy.render(cfg.replace(tls_cert=str(cert)), tmp_path)


def test_a_short_soak_with_additions_and_deletions_loses_nothing(gunicorn_only, capsys):
    """bench/soak.py in miniature: 2 clients for 8 s, compactions every 10 changes, then the checks."""
    url, _, root = gunicorn_only
    argv = [url, "--images", str(root / "photos"), "--clients", "2", "--minutes", "0.13"]
    assert soak.main([*argv, "--token", TOKEN, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["errors"] == {} and result["requests"] > 20
    assert result["acknowledged_additions"] > 0 and result["acknowledged_deletions"] > 0
    assert result["lost_or_wrong"] == result["deleted_but_served"] == result["duplicate_ids"] == []


def test_the_cards_gunicorn_command_serves_from_a_checkout(gunicorn_only):
    """gunicorn -c gunicorn.conf.py 'app:create_app()': the root files stand for the package."""
    import os
    import sys

    from helpers import ROOT

    _, cfg, _ = gunicorn_only
    bind = f"127.0.0.1:{servers.free_port()}"
    environ = {**os.environ, **config.to_environ(cfg.replace(bind=bind)), "WEB_CONCURRENCY": "1"}
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        servers.wait_until_up(f"http://{bind}/healthz", process)
        with urllib.request.urlopen(f"http://{bind}/healthz") as reply:
            assert json.load(reply)["status"] == "ok"
    finally:
        servers.stop(process)
