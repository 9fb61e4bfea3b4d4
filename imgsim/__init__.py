"""imgsim: self-hosted image similarity search.

Images become vectors (models/), the vectors an Annoy index on disk (index/, search/), built
offline (indexing/), changed live (live/), searched through one query path (query/) and served
over HTTP (serve/); cli/ is the ``imgsim`` command. Each sub-package imports only from the ones
listed before it here:

    config < images < index < models < search < live < query < indexing < measure < serve < cli
"""

__version__ = "0.3.0"

from imgsim import config as _config  # noqa: E402 (after the version, which the build reads)

_config.quiet_tensorflow()  # before any entry point can import TensorFlow
