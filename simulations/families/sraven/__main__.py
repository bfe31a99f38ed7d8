"""`python -m simulations.families.sraven` (see simulations.families.sraven.cli)."""

import sys

from simulations.families.sraven.cli import main

sys.exit(main())
