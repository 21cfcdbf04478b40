"""``python -m pyoci``."""

import sys

from pyoci.cli import main

sys.exit(main())
