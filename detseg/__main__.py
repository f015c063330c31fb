"""``python -m detseg ...`` is the ``detseg`` command."""

import sys

from detseg.pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main())
