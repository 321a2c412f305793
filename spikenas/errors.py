"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class SpikeNASError(ValueError):
    """Bad input or an impossible request; the message names the value and what is allowed."""
