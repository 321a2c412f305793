"""spikenas.kernels.pack: reference, cpp and triton implementations with one signature."""
