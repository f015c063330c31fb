"""``python -m detseg.pipeline.cli ...`` is the ``detseg`` command too (as before the package was split)."""

import sys

from detseg.pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main())
