"""`python -m erp ...`: see erp/cli.py."""

import sys

from erp.cli import main

sys.exit(main())
