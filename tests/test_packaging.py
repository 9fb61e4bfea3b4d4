"""imgsim installs as one package with one command: ``pip install .`` into a fresh environment, then
``imgsim --help``, ``imgsim index`` and ``imgsim search`` from another folder.

The wheel is built and installed offline (no build isolation, no index): the fresh environment
sees this environment's packages for the dependencies, and nothing of the checkout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT, quiet_build, write_images
from imgsim import config

pytestmark = pytest.mark.slow  # wheels and fresh virtual environments


def _pins(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_package_depends_on_what_requirements_pin():
    """requirements.txt stays the one pinned set for the README's commands; pyproject says the same."""
    text = (ROOT / "requirements.txt").read_text()
    runtime = _pins(text.split("# Tests and linting")[0].splitlines())
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert declared == runtime


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
        ".",
    ]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)
    return next(out.glob("imgsim-*.whl"))


def test_the_wheel_carries_the_pages_and_the_command(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"imgsim/templates/results.html", "imgsim/static/upload.js", "imgsim/deploy/nginx.conf"} <= names
    assert "imgsim/cli/__init__.py" in names and not any(re.match(r"[^/]+\.py$", n) for n in names)
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt")))
    assert b"imgsim = imgsim.cli:main" in entry_points


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; the dependencies come from this environment."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    ours = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "numpy").is_dir())
    theirs = next((venv / "lib").glob("python3*/site-packages"))
    (theirs / "dependencies.pth").write_text(f"{ours}\n")  # after the venv's own: the wheel wins
    # -I (--ignore-installed): this environment's own copy of imgsim (make installs one) is visible too
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", "-I", wheel]
    subprocess.run([*map(str, pip)], check=True, capture_output=True, timeout=300)
    return venv / "bin" / "imgsim"


def _run(command: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess:
    environ = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2", "HOME": str(cwd)}
    return subprocess.run(
        [str(command), *map(str, args)], cwd=cwd, env=environ, capture_output=True, text=True, timeout=600
    )


def test_imgsim_help_lists_every_command_from_any_folder(installed, tmp_path):
    result = _run(installed, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("index", "search", "serve", "duplicates", "map", "evaluate", "add", "remove", "config"):
        assert f"  {command} " in result.stdout
    for command in ("index", "search", "serve", "add", "config"):
        sub = _run(installed, command, "--help", cwd=tmp_path)
        assert sub.returncode == 0 and f"usage: imgsim {command}" in sub.stdout, sub.stderr


def test_index_and_search_work_from_the_installed_package(installed, tmp_path, tiny_model):
    photos = tmp_path / "photos"
    write_images(photos, 6)
    flags = ["--model", tiny_model, "--image-size", "32", "--trees", "5", "--index-dir", tmp_path / "index"]
    built = _run(installed, "index", photos, "--no-progress", *flags, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    found = _run(
        installed, "search", photos / "img0002.png", "--json", "--index-dir", tmp_path / "index", cwd=tmp_path
    )
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["results"][0]["path"] == "img0002.png"
    where = _run(installed.parent / "python", "-c", "import imgsim; print(imgsim.__file__)", cwd=tmp_path)
    assert "site-packages" in where.stdout and str(ROOT) not in where.stdout


def test_the_serving_image_installs_the_same_pins_without_tensorflow_or_test_tools():
    text = (ROOT / "requirements.txt").read_text()
    pinned = {line.split("==")[0]: line for line in _pins(text.splitlines())}
    serving = _pins((ROOT / "deploy" / "requirements-serve.txt").read_text().splitlines())
    assert all(pinned[line.split("==")[0]] == line for line in serving)  # the same versions
    names = {line.split("==")[0].split("[")[0] for line in serving}
    left_out = {"tensorflow-cpu", "keras", "ray", "pytest", "ruff", "selenium", "schemathesis", "hatchling"}
    assert not names & left_out


SERVE_CHECK = """
import io, json, sys
from PIL import Image
from imgsim import config
from imgsim.serve.app import create_app

app = create_app(config.load())
buffer = io.BytesIO()
Image.open(sys.argv[1]).save(buffer, "PNG")
reply = app.test_client().post("/search?k=3&format=json", data=buffer.getvalue(), content_type="image/png")
print(json.dumps({"status": reply.status_code, "body": reply.get_json()}))
"""


def test_the_serving_environment_answers_a_search(wheel, tiny_model, tmp_path):
    """What the container installs (deploy/requirements-serve.txt, then the wheel) in a fresh
    environment, from the package index: the app imports and answers a search on an index built
    here. Once it lacked imagehash and OpenCV, which the service imports, and could not start."""
    photos, index = tmp_path / "photos", tmp_path / "index"
    write_images(photos, 6)
    cfg = config.Config(index_dir=index, model=tiny_model, image_size=32, trees=5)
    quiet_build(photos, cfg)
    venv = tmp_path / "serve-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    requirements = ROOT / "deploy" / "requirements-serve.txt"
    install = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(requirements)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    wheel_install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(wheel_install, check=True, capture_output=True, timeout=300)
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KERAS_HOME": os.environ["KERAS_HOME"]}
    environ |= config.to_environ(cfg)
    query = [python, "-c", SERVE_CHECK, str(photos / "img0004.png")]
    answered = subprocess.run(query, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=600)
    assert answered.returncode == 0, answered.stderr[-3000:]
    reply = json.loads(answered.stdout.strip().splitlines()[-1])
    assert reply["status"] == 200, reply
    assert reply["body"]["results"][0]["path"] == "img0004.png"
    missing = subprocess.run([python, "-c", "import tensorflow"], capture_output=True, timeout=60)
    assert missing.returncode != 0  # the serving image runs without TensorFlow


def test_the_compose_file_is_safe_to_start_as_it_is():
    """It published plain HTTP on every interface and PostgreSQL as imgsim/imgsim, with no memory,
    process or log limits (hardening item 13)."""
    import yaml

    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert services["imgsim"]["ports"] == ["${IMGSIM_PUBLISH:-127.0.0.1}:8080:8080"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "${IMGSIM_PG_PASSWORD:-}"
    for name in ("imgsim", "postgres"):
        assert services[name]["mem_limit"] and services[name]["pids_limit"] > 0, name
    for name, service in services.items():
        assert service["logging"]["options"]["max-size"], name
