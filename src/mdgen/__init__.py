"""mdgen: generative modeling of molecular-dynamics trajectories (MDGen)."""

import os
import sys

# OpenMP threads that spin while waiting make every CPU op 10-30x slower as soon as another process
# (a data worker, an MD run, a second job) shares the cores: measured 4 s vs 0.17 s per training step
# of the small model on 2 cores. Passive waiting costs little when the cores are free. Set before
# torch is imported (mdgen is imported first by `python -m mdgen.<entry>`); users can override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# `mdgen.io` is the old (and documented: ARCHITECTURE.md) name of `mdgen.trajectory_files`. No file is
# called io.py (it shadowed the standard library for scripts run from inside src/mdgen/): this finder,
# consulted only after the normal ones found nothing, answers `import mdgen.io` with the renamed module
# (the same module object, so both names share classes and state). Nothing is imported until asked for.
_MODULE_ALIASES = {"mdgen.io": "mdgen.trajectory_files"}


class _AliasFinder:
    """Meta-path finder and loader for `_MODULE_ALIASES`."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name not in _MODULE_ALIASES:
            return None
        from importlib.machinery import ModuleSpec

        return ModuleSpec(name, cls())

    def create_module(self, spec):
        from importlib import import_module

        return import_module(_MODULE_ALIASES[spec.name])

    def exec_module(self, module):
        pass  # already executed under its own name


if not any(isinstance(finder, type) and finder.__name__ == "_AliasFinder" for finder in sys.meta_path):
    sys.meta_path.append(_AliasFinder)
