"""Every shell block of the README runs, as written, where a newcomer runs it: in the checkout
after ``make demo`` (tests/demo.py's copy), against the demo's own service.

The blocks are read with mktestdocs' ``grab_code_blocks`` and run here, each in its own bash with
``-e`` and ``pipefail``, with the virtual environment activated as the README says. Where a block
cannot run as written, the README says why in a comment just above it:
``<!-- not run by tests/test_readme.py: REASON -->``. What is substituted, and why, is SUBSTITUTED.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from mktestdocs import grab_code_blocks

from demo import Demo
from helpers import ROOT, needs_chromium, write_images
from imgsim import config

README = (ROOT / "README.md").read_text()
NOT_RUN = re.compile(r"<!-- not run by tests/test_readme\.py: (.+?) -->\s*$")
PICTURES = "~/Pictures"  # the README's folder of your own photos
SUBSTITUTED = {
    # InceptionV3's ImageNet weights cannot be downloaded here: the shared pretrained model stands in
    "imgsim index ": f"imgsim index --model {config.SHARED_MODEL} ",
}

pytestmark = [needs_chromium, pytest.mark.slow]  # the demo fixture's company: its copy and service


def _blocks() -> list[tuple[str, str | None]]:
    """Each bash block and, where the README says it is not run here, why."""
    found, start = [], 0
    for block in grab_code_blocks(README, lang="bash"):
        at = README.index("```bash\n" + block, start)
        before = README[:at].rstrip("\n").rsplit("\n", 1)[-1]
        reason = NOT_RUN.search(before)
        found.append((block, reason.group(1) if reason else None))
        start = at + len(block)
    return found


BLOCKS = _blocks()


def test_the_readme_has_blocks_to_run_and_says_why_of_the_others():
    assert len(BLOCKS) >= 4
    assert sum(reason is None for _, reason in BLOCKS) >= 3
    assert all(len(reason) > 20 for _, reason in BLOCKS if reason)


@pytest.fixture(scope="module")
def your_photos(tmp_path_factory):
    """The folder that stands for ~/Pictures: a few photos (scikit-image's) and drawings, in sub-folders."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("pictures")
    write_images(folder / "drawings", 6, size=96)
    (folder / "some").mkdir()
    Image.fromarray(data.coffee()).save(folder / "some" / "photo.jpg")
    Image.fromarray(data.rocket()).save(folder / "some" / "rocket.jpg")
    Image.fromarray(data.chelsea()).save(folder / "cat.png")
    return folder


@pytest.mark.parametrize("number", range(len(BLOCKS)), ids=lambda n: f"block{n + 1}")
def test_a_readme_block_runs_as_written(number, demo: Demo, your_photos):
    block, reason = BLOCKS[number]
    if reason:
        pytest.skip(f"the README says: {reason}")
    script = block.replace(PICTURES, str(your_photos))
    for written, instead in SUBSTITUTED.items():
        script = script.replace(written, instead)
    script = script.replace("http://127.0.0.1:8000", demo.url)
    environ = demo.environ | {"PATH": f"{demo.checkout / '.venv' / 'bin'}:{demo.environ['PATH']}"}
    run = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=demo.checkout,
        env=environ,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, (
        f"{script}\n--- stdout\n{run.stdout[-3000:]}\n--- stderr\n{run.stderr[-3000:]}"
    )
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert demo.server_errors() == []
