"""Search the index with image files, draw its map, list its copies (= ``imgsim search``).

    python ann.py QUERY... [--k 5] [--json] [--plot OUT_DIR]
    python ann.py --map OUT.png                            (a t-SNE map of the indexed collection)
    python ann.py --duplicates [--threshold D] [--json]    (groups of copies in the collection)

The command line is imgsim/cli/search.py; the Annoy index it opens is imgsim/search/annoy_index.py.
"""

import sys

from imgsim.cli.search import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
