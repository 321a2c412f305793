"""spikenas.kernels.patterns: distinct binary patterns; reference, cpp and triton entries with one signature."""
