"""The ``imgsim`` command: one subcommand per job, each the same code and flags as its script.

imgsim index DIR     = python img2vec.py DIR       imgsim search PHOTO  = python ann.py PHOTO
imgsim add FILE...   = python img2vec.py --add     imgsim remove ID...  = python img2vec.py --remove
imgsim duplicates    = python ann.py --duplicates  imgsim map OUT.png   = python ann.py --map OUT.png
imgsim serve         = gunicorn (--dev: app.py)    imgsim evaluate DIR  = python evaluate.py DIR
imgsim autoencoder   = python autoencoder.py       imgsim config        = python config.py
imgsim proxy         = gunicorn behind nginx
"""

from __future__ import annotations

import importlib
import os
import sys

from imgsim import __version__

# name: (module under imgsim, arguments put before the user's, one line for --help)
COMMANDS = {
    "index": ("cli.index", [], "embed a folder of images and (re)build the index (img2vec.py)"),
    "search": ("cli.search", [], "find the indexed images most similar to image files (ann.py)"),
    "serve": ("cli.serve", [], "run the web service: gunicorn, or --dev for Flask's server (app.py)"),
    "duplicates": ("cli.duplicates", [], "list groups of copies, decide about them (ann.py --duplicates)"),
    "map": ("cli.search", ["--map"], "draw a t-SNE map of the collection: imgsim map OUT.png"),
    "evaluate": ("cli.evaluate", [], "retrieval quality on a folder of class sub-folders (evaluate.py)"),
    "add": ("cli.index", ["--add"], "add image files to the running index (img2vec.py --add)"),
    "remove": ("cli.index", ["--remove"], "remove items by id (img2vec.py --remove)"),
    "autoencoder": ("cli.autoencoder", [], "train the vector autoencoder on the index (autoencoder.py)"),
    "config": ("cli.show_config", [], "print every setting, its variable, flag and value (config.py)"),
    "proxy": ("serve.proxy", [], "run gunicorn behind nginx, the buffering proxy"),
}


def usage() -> str:
    lines = [f"usage: imgsim COMMAND [--help] ...   (imgsim {__version__})", "", "commands:"]
    lines += [f"  {name:<12} {about}" for name, (_, _, about) in COMMANDS.items()]
    lines += ["", "Every setting is also an IMGSIM_* variable: imgsim config lists them."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        return dispatch(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:  # `imgsim config | head`: the reader went away, which is no error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 0


def dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(__version__)
        return 0
    if argv[0] not in COMMANDS:
        print(f"imgsim: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, before, _ = COMMANDS[argv[0]]
    command = importlib.import_module(f"imgsim.{module}")
    rest = argv[1:]
    if before and rest in (["-h"], ["--help"]):  # `imgsim add --help` shows the script's help
        before = []
    return command.main([*before, *rest], prog=f"imgsim {argv[0]}")
