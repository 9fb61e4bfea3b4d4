"""gunicorn settings for imgsim: ``gunicorn -c gunicorn.conf.py 'app:create_app()'`` from a checkout
(the root file imports these), ``imgsim serve`` anywhere.

Workers: one per CPU core. Each worker runs the network for the query image (OpenVINO by
default, no TensorFlow loaded: about 200-500 MB a worker instead of 750-870 MB), and one inference
already spreads over the cores, so more workers than cores only fight for the CPU.
Threads: 4 per worker, so that decoding, Annoy and HTTP of one search overlap the network run of
another, and concurrent searches in a worker can share one forward pass (batching.py, at most
IMGSIM_QUERY_BATCH = 4). docs/benchmarks.md section 8 measures 2x2, 2x4, 2x8 and 1x8: 4 threads
served as many searches as 8 with a fifth less memory per worker.
The memory-mapped Annoy index is shared by all workers through the page cache.
The app is not preloaded: TensorFlow imported before the fork can hang the workers.
Every value can be overridden with the usual GUNICORN_CMD_ARGS or the variables below.
"""

import multiprocessing
import os

from imgsim import config as imgsim_config  # not "config": gunicorn reads that name as its own setting

bind = imgsim_config.load().bind
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("IMGSIM_THREADS", "4"))
preload_app = False
# Loading TensorFlow and the model takes several seconds per worker.
timeout = 120
graceful_timeout = 30
accesslog = "-"
BLAS_THREADS = 1  # numpy's BLAS threads in each worker (post_worker_init says why)


# /metrics under several workers: prometheus_client's multiprocess mode keeps each worker's values
# in files of one directory (fresh for every start) and sums them at scrape time.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="imgsim-metrics-")


def post_worker_init(worker):
    """One BLAS thread per worker (unless OPENBLAS_NUM_THREADS says otherwise). A search's numpy work
    is a few small products that a second thread does not speed up, and OpenBLAS's threads keep
    spinning after each: with 2 workers on 2 cores they took the CPU from the other worker's
    search. One client, 2 workers (docs/benchmarks.md section 15): re-encoded photos p50 / p90
    26.6 / 42.9 -> 20.0 / 21.6 ms, photos the collection lacks 38.5 / 77.6 -> 31.1 / 33.0 ms."""
    if "OPENBLAS_NUM_THREADS" not in os.environ:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=BLAS_THREADS, user_api="blas")  # kept for the worker's life


def child_exit(server, worker):
    from imgsim.serve import metrics

    metrics.worker_exited(worker.pid)
