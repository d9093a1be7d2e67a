"""``python -m lr_lightning`` is ``lr-lightning``."""

from lr_lightning.cli import main

if __name__ == "__main__":
    main()
