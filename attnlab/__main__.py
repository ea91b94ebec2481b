"""`python -m attnlab ...`: the same CLI as the `attnlab` console script."""

import sys

from attnlab.cli import main

sys.exit(main())
