"""``python -m duplex.emulator``: serve the Live API emulator until Ctrl-C."""

import sys

from .cli import main

sys.exit(main())
