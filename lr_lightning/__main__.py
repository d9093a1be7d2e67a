"""``python -m lr_lightning`` is ``lr-lightning``."""

import sys

from lr_lightning.cli import main

if __name__ == "__main__":
    sys.argv[0] = "lr-lightning"  # the program name in usage lines and errors, as with the console script
    main()
