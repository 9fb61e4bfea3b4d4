"""Turn a collection of images into vectors and (re)build the search index (= ``imgsim index``).

    python img2vec.py DATASET [--model inception_v3] [--reduce none|autoencoder|pca] [--index-dir rsc_files]
    python img2vec.py --add FILE... | --remove ID...      (the live layer, as POST/DELETE /images)

The command line is imgsim/cli/index.py, the build imgsim/indexing/indexer.py.
"""

import sys

from imgsim.cli.index import edit_live, main

__all__ = ["edit_live", "main"]

if __name__ == "__main__":
    sys.exit(main())
