"""``python -m taskqueue.cli``: the same command line as ``taskqueue`` (tests
and ``taskqueue bench`` start their processes this way)."""

import sys

from taskqueue.cli import main

sys.exit(main())
