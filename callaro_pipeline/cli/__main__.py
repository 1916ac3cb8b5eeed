"""`python -m callaro_pipeline.cli ...` = `callaro ...`."""

import sys

from callaro_pipeline.cli.app import main

sys.exit(main())
