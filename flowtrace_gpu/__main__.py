"""``python -m flowtrace_gpu``: the flowtrace command line."""

import sys

from .cli import main

sys.exit(main())
