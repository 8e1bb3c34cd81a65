"""Training the style networks (PyTorch). `python -m training.train --help` to start."""

import os

# Idle OpenMP threads sleep instead of spinning (set before anything imports torch). Spinning
# threads of a training run and any other busy process on the same cores starve each other: on
# 2 shared cores, 6 tiny training steps took 131 s spinning and 14 s with PASSIVE.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
