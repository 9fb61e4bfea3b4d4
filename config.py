"""Print every setting of imgsim: its default, its IMGSIM_* variable, its flag and its value now
(= ``imgsim config``; ``--json`` for programs).

The settings themselves are imgsim/config.py: defaults < IMGSIM_* variables < flags.
"""

import sys

from imgsim.cli.show_config import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
