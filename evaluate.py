"""Retrieval quality on a folder of class sub-folders: P@k, mAP, recall and edited copies
(= ``imgsim evaluate``).

    python evaluate.py DATASET [--model ...] [--reduce none|pca|autoencoder] [--trees 100] [--json]

The command line is imgsim/cli/evaluate.py, the measures imgsim/measure/scoring.py.
"""

import sys

from imgsim.cli.evaluate import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
