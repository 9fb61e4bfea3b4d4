"""Secrets are never printed and written only where this user alone can read them (hardening item 11)."""

import os
import stat
from pathlib import Path

import pytest

from imgsim import config
from imgsim.cli import show_config
from imgsim.serve import proxy

URLS = {
    "postgresql://imgsim:s3cr%40t@db:5432/imgsim": "postgresql://imgsim:***@db:5432/imgsim",
    "host=db user=imgsim password=s3cr3t dbname=imgsim": "host=db user=imgsim password=*** dbname=imgsim",
    "host=db password='s3 cr3t' dbname=imgsim": "host=db password=*** dbname=imgsim",
    "postgresql://db/imgsim": "postgresql://db/imgsim",
}


@pytest.mark.parametrize(("url", "shown"), URLS.items())
def test_the_live_stores_password_is_never_shown(url, shown):
    assert config.redacted("live_url", url) == shown


def test_python_config_py_prints_no_password_or_token(capsys, monkeypatch):
    """``python config.py`` once printed IMGSIM_LIVE_URL whole, password included."""
    monkeypatch.setenv("IMGSIM_LIVE_URL", "postgresql://imgsim:s3cr3t@db/imgsim")
    monkeypatch.setenv("IMGSIM_ADMIN_TOKEN", "a-token-of-twenty-chars")
    for flags in ([], ["--json"], ["--markdown"]):
        show_config.main(flags)
        printed = capsys.readouterr().out
        assert "s3cr3t" not in printed and "a-token-of-twenty-chars" not in printed, flags
        assert "postgresql://imgsim:***@db/imgsim" in printed or flags == ["--markdown"]


def test_nginxs_run_folder_and_configuration_are_private(tmp_path):
    """The configuration holds the admin token: a folder only this user enters, a file only it reads."""
    run_dir = tmp_path / "run"
    proxy.private_run_dir(run_dir)
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not nginx's")
    (run_dir / "nginx.conf").symlink_to(elsewhere)  # planted before the start
    proxy._write_private(run_dir / "nginx.conf", "secret")
    assert elsewhere.read_text() == "not nginx's"  # the link was replaced, not followed
    assert stat.S_IMODE((run_dir / "nginx.conf").stat().st_mode) == 0o600


def test_a_run_folder_someone_else_made_first_is_refused(tmp_path):
    """/tmp/imgsim-nginx, the container's, could be made first by another local user."""
    planted = tmp_path / "planted"
    planted.symlink_to(tmp_path)
    with pytest.raises(proxy.ProxyError, match="not this user's folder"):
        proxy.private_run_dir(planted)
    if os.geteuid() != 0:
        pytest.skip("making a folder owned by another user needs root")
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o777)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(proxy.ProxyError, match="not this user's folder"):
        proxy.private_run_dir(theirs)


def test_nginx_logs_to_its_streams_not_to_files_that_grow_in_its_run_folder(tmp_path):
    """Its access and error logs grew without rotation in a run folder under /tmp (item 13)."""
    rendered = proxy.render(config.Config(), tmp_path)
    assert "error_log stderr" in rendered and "access_log /dev/stdout;" in rendered
    assert ".log" not in rendered


def test_nginx_lets_fewer_report_requests_through_than_gunicorn_has_threads():
    """nginx allowed 64 connections an address, more than every gunicorn thread, and limited only
    changes to /images: a few /duplicates or /map requests could hold every thread (item 2)."""
    import re

    from imgsim.serve import gunicorn_conf

    rendered = proxy.render(config.Config(), Path("/run/imgsim-test"))
    reports = rendered.split("location ~ ^/(duplicates|map)$ {", 1)[1].split("}", 1)[0]
    in_all = int(re.search(r"limit_conn reports_in_all (\d+);", reports)[1])
    assert "limit_conn reports_per_address 2;" in reports
    assert in_all < gunicorn_conf.threads * 2  # two workers, the fewest a machine runs
