"""Keep this repository's ``kernels/`` and ``tokenizers/`` folders from shadowing the installed
packages of those names (Hugging Face's ``kernels`` and ``tokenizers``).

The folders are installed as ``mmgen.kernels`` and ``mmgen.tokenizers``. When Python runs with
the repository root on ``sys.path`` (a notebook or ``python -c`` started there, ``python -m
pytest``), ``import tokenizers`` would find the folder first; its ``__init__`` then calls
:func:`use_installed_package`, which loads the installed package in its place, or raises
``ModuleNotFoundError`` when there is none. Standard library only.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def use_installed_package(name: str, init_file: str) -> None:
    """Replace ``sys.modules[name]`` (this folder, imported top-level) by the installed package
    ``name`` found on ``sys.path`` without the repository root."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(init_file)))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != root]
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(
            f"No module named {name!r} (the {name}/ folder of the mmgen repository is "
            f"mmgen.{name}, not a top-level package)",
            name=name,
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the import statement returns what sys.modules holds
    spec.loader.exec_module(module)
