"""Training of feed-forward style networks (see training/train.py)."""
