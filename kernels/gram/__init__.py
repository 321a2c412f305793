"""spikenas.kernels.gram: reference, cpp and triton implementations with one signature."""
