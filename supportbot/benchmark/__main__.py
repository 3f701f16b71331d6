"""`python -m supportbot.benchmark ...`, the same as `supportbot bench ...`."""
import sys

from supportbot.benchmark.command import main

sys.exit(main())
