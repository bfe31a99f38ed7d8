"""`python -m simulations.sraven` (see simulations.sraven.cli)."""

import sys

from simulations.sraven.cli import main

sys.exit(main())
