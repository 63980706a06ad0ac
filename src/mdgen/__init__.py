"""mdgen: generative modeling of molecular-dynamics trajectories (MDGen)."""

import os

# OpenMP threads that spin while waiting make every CPU op 10-30x slower as soon as another process
# (a data worker, an MD run, a second job) shares the cores: measured 4 s vs 0.17 s per training step
# of the small model on 2 cores. Passive waiting costs little when the cores are free. Set before
# torch is imported (mdgen is imported first by `python -m mdgen.<entry>`); users can override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
