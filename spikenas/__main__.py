"""``python -m spikenas COMMAND ...``: the same as the ``spikenas`` console command."""

import sys

from spikenas.cli import main

sys.exit(main())
