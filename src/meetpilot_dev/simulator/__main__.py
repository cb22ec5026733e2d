"""``python -m meetpilot_dev.simulator --port 8765``: run the MeetStream simulator until Ctrl-C."""

from __future__ import annotations

import sys

from meetpilot_dev.simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
