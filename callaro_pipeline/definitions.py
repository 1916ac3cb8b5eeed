"""The Dagster code location, loaded the way `dg` projects load it: every Dagster object under `defs/`.

`defs/<domain>/assets.py` hold the assets and checks of one stage (thin calls into `core/` and `storage/`),
`defs/jobs.py` the jobs, `defs/automation/` the sensors, schedule and automation conditions,
`defs/resources.py` the resources and the executor.
"""

from functools import cache
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


@cache
def loaded_definitions() -> dg.Definitions:
    """The code location as one object, for the command line and the tests (loaded once per process)."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
