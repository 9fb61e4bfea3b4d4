"""``imgsim config`` (``python config.py``): every setting, its default, variable, flag and value now.

Precedence is flag > ``IMGSIM_*`` variable > default; the value shown is what a script started
here with no flags would use. ``--json`` prints the same rows as a JSON list.
"""

from __future__ import annotations

import argparse
import json
import sys

from imgsim import config

COLUMNS = ("setting", "default", "variable", "flag", "value")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Print every setting: its default, IMGSIM_* variable, flag and current value."
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        rows = config.describe(config.load())
    except config.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip())
    changed = [row["setting"] for row in rows if row["value"] != row["default"]]
    for row in rows:
        mark = " *" if row["setting"] in changed and row["setting"] not in config.SECRETS else ""
        print("  ".join(row[c].ljust(widths[c]) for c in COLUMNS).rstrip() + mark)
    if changed:
        print("\n* set by an IMGSIM_* variable here; a flag would beat it.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
