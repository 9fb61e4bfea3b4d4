"""``imgsim config`` (``python config.py``): every setting, its default, variable, flag and value now.

Precedence is flag > ``IMGSIM_*`` variable > default; the value shown is what a script started
here with no flags would use. ``--json`` prints the same rows as a JSON list; ``--markdown`` the
table of docs/configuration.md, each setting described by the comment above its declaration in
imgsim/config.py (a comment over several lines of settings describes them all; where there is none,
its flag's help), so that every setting is described in one place.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys

from imgsim import config

COLUMNS = ("setting", "default", "variable", "flag", "value")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Print every setting: its default, IMGSIM_* variable, flag and current value."
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--markdown", action="store_true", help="print the table of docs/configuration.md")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown())
        return 0
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


def declared_comments() -> dict[str, tuple[str, str]]:
    """Each setting's comments in config.Config: its own (the lines just above its declaration)
    and its group's (the comment over the declarations it follows)."""
    comments: dict[str, tuple[str, str]] = {}
    above: list[str] = []
    group = ""
    for line in inspect.getsource(config.Config).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        declared = re.match(r"(\w+): [^=]+=", stripped)
        if declared:
            own = " ".join(above)
            group = own or group
            comments[declared.group(1)] = (own, group)
        above = []
    return comments


def markdown() -> str:
    """The settings as a Markdown table: setting, variable, flag, default and what it does."""
    comments = declared_comments()
    lines = ["| setting | variable | flag | default | what it does |", "|---|---|---|---|---|"]
    for row in config.describe(config.Config()):
        name = row["setting"]
        own, group = comments.get(name, ("", ""))
        about = own or re.sub(r" \(default %\(default\)s\)", "", config.HELP.get(name, "")) or group
        flag = f"`{row['flag']}`" if row["flag"] else ""
        default = f"`{row['default']}`" if row["default"] else "(empty)"
        lines.append(f"| {name} | `{row['variable']}` | {flag} | {default} | {about.replace('|', '/')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
