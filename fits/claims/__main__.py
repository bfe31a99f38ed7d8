"""`python -m fits.claims` (see fits.claims)."""

import sys

from fits.claims import main

sys.exit(main())
