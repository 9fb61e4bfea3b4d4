"""``python -m imgsim`` = the ``imgsim`` command, where its script is not on the PATH."""

import sys

from imgsim.cli import main

sys.exit(main())
