"""Keep TensorFlow's C++ start-up lines off every command's output.

The package imports this module first (imgsim/__init__.py), so every entry point runs it before
TensorFlow can be imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import tempfile


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up lines off every command's output: its log level for later
    messages, and a hook that loads the ``tensorflow`` package with the process's standard error
    set aside. The lines its libraries print while loading ("All log messages before
    absl::InitializeLog() ...", "oneDNN custom operations are on ...") ignore TF_CPP_MIN_LOG_LEVEL
    (tensorflow#100442); what the import printed is shown after all if it fails. The package
    imports this module first, so every entry point runs it before TensorFlow can be imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not any(isinstance(finder, _QuietTensorflow) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorflow())


class _QuietTensorflow(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as Python would and runs its import with file descriptor 2 on a
    temporary file (C++ writes there directly, past sys.stderr)."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as aside:
            os.dup2(aside.fileno(), 2)
            try:
                self.loader.exec_module(module)
            except BaseException:
                os.dup2(saved, 2)
                aside.seek(0)
                sys.stderr.write(aside.read().decode(errors="replace"))
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)
