"""The benchmark suite (``make bench``): figures as ratios to limits measured in the same run."""
