"""``python3 -m yurthub`` runs the ``yurthub`` command."""

import sys

from yurthub.cli import main

sys.exit(main())
