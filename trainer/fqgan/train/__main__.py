"""`python -m fqgan.train` (and `torchrun ... -m fqgan.train`): see cli.py."""
import sys

from .cli import main

sys.exit(main())
