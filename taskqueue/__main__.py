"""``python -m taskqueue``: the same command line as ``taskqueue``."""

import sys

from taskqueue.cli import main

sys.exit(main())
