"""`python -m safs_lite`: the command line (`safs_lite.cli`)."""
import sys

from .cli import main

sys.exit(main())
