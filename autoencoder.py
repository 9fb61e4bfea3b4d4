"""Train the dense autoencoder on the current index's vectors and compare it with PCA
(= ``imgsim autoencoder``). Then ``python img2vec.py FOLDER --reduce autoencoder`` uses it.

The command line is imgsim/cli/autoencoder.py, the reducers imgsim/models/reducers.py.
"""

import sys

from imgsim.cli.autoencoder import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
