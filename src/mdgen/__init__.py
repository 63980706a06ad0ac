"""mdgen: generative modeling of molecular-dynamics trajectories (MDGen)."""

__version__ = "0.1.0"
