"""imgsim: self-hosted image similarity search.

Images become vectors (models/), the vectors an Annoy index on disk (index/, search/), built
offline (indexing/), changed live (live/), searched through one query path (query/) and served
over HTTP (serve/); cli/ is the ``imgsim`` command. Each sub-package imports only from the ones
listed before it here:

    config < durable < images < index < models < search < duplicates < live < query < indexing
    < measure < serve < cli

(quiet_tensorflow.py, below them all, keeps TensorFlow's start-up lines off every command's output.)
"""

__version__ = "0.3.0"

from imgsim import quiet_tensorflow as _quiet  # noqa: E402 (after the version, which the build reads)

_quiet.quiet_tensorflow()  # before any entry point can import TensorFlow
