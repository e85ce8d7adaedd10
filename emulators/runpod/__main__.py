"""`python -m emulators.runpod --port PORT [options]`: serve until SIGTERM/SIGINT."""

import sys

from .cli import main

sys.exit(main())
