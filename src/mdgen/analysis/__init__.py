"""Trajectory analysis shared by sampling and evaluation (neither imports the other for it).

- `loading`: reference/sample trajectories as `TrajectoryGroup`s (atoms matched by name, time steps
  from XTC stamps);
- `features`: backbone and side-chain torsions (radians) and their (cos, sin) features;
- `msm`: the reference state model (TICA -> k-means -> MSM -> PCCA+ metastable states, METHOD 7.1);
- `bridge`: Markov-bridge path probabilities and transitions between metastable states;
- `validity`: METHOD 12's physical-validity limits and checks (breaks, clashes, bonds).

Sampling uses them to pick transition-path endpoints and to clear clashes; evaluation to score.
"""
