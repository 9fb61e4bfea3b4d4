"""gunicorn settings for imgsim: gunicorn -c gunicorn.conf.py 'app:create_app()'

Workers: one per CPU core. Each worker runs TensorFlow for the query embedding, and TensorFlow
already uses several threads per inference, so more workers than cores only fight for the CPU.
Each worker holds its own copy of the Keras model (about 100 MB for InceptionV3) while the
memory-mapped Annoy index is shared through the page cache.
Threads: 2 per worker, so that serving images and thumbnails (I/O) overlaps with a search.
The app is not preloaded: TensorFlow imported before the fork can hang the workers.
Every value can be overridden with the usual GUNICORN_CMD_ARGS or the variables below.
"""

import multiprocessing
import os

import config as imgsim_config  # not "config": gunicorn reads that name as its own setting

bind = imgsim_config.load().bind
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("IMGSIM_THREADS", "2"))
preload_app = False
# Loading TensorFlow and the model takes several seconds per worker.
timeout = 120
graceful_timeout = 30
accesslog = "-"


# /metrics under several workers: prometheus_client's multiprocess mode keeps each worker's values
# in files of one directory (fresh for every start) and sums them at scrape time.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="imgsim-metrics-")


def child_exit(server, worker):
    import metrics

    metrics.worker_exited(worker.pid)
