"""Neuromorphic hardware targets: what a chip holds, and how a network's layers are placed on it."""
