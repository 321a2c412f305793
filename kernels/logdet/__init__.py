"""spikenas.kernels.logdet: reference, cpp and triton implementations with one signature."""
