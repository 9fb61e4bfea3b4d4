"""The service's gunicorn workers: what keeps one worker's search from slowing another's."""

import json
import os
import subprocess
import sys

import pytest

BLAS_THREADS_AFTER_INIT = """
import json, numpy
from threadpoolctl import threadpool_info
from imgsim.serve import gunicorn_conf
gunicorn_conf.post_worker_init(None)
print(json.dumps([pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]))
"""


def _blas_threads(env: dict[str, str]) -> list[int]:
    found = subprocess.run(
        [sys.executable, "-c", BLAS_THREADS_AFTER_INIT], env=env, capture_output=True, text=True, timeout=120
    )
    assert found.returncode == 0, found.stderr
    return json.loads(found.stdout.strip().splitlines()[-1])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: BLAS runs one thread anyway")
def test_a_worker_runs_numpy_on_one_blas_thread():
    """Regression: OpenBLAS started a thread per core in every worker, and its threads spin after
    each product: with 2 workers one client's p90 was 2-3 times its p50."""
    env = {name: value for name, value in os.environ.items() if name != "OPENBLAS_NUM_THREADS"}
    assert _blas_threads(env) == [1]


def test_openblas_num_threads_set_by_the_operator_is_kept():
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    assert _blas_threads(env) == [2]
