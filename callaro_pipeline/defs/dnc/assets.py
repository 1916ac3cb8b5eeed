"""dnc_lists: DNC files dropped in CALLARO_HOME/dnc/inbox/<source>/ loaded into the append-only DNC store."""

from pathlib import Path

import dagster as dg

from callaro_pipeline.core.errors import CallaroError
from callaro_pipeline.defs.failures import withhold_error_details
from callaro_pipeline.defs.partitions import WAREHOUSE_POOL
from callaro_pipeline.storage.dnc_loads import import_dnc_file
from callaro_pipeline.storage.warehouse import Warehouse


def source_for_folder(name: str) -> str:
    """Folder names are path-safe spellings of sources: `campaign-spring` holds the list `campaign:spring`."""
    return "campaign:" + name.removeprefix("campaign-") if name.startswith("campaign-") else name


def waiting_dnc_files(inbox: Path) -> list[tuple[str, Path]]:
    if not inbox.is_dir():
        return []
    return [
        (source_for_folder(folder.name), path)
        for folder in sorted(p for p in inbox.iterdir() if p.is_dir())
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.startswith(".")
    ]


@dg.asset(
    group_name="suppress",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    owners=["team:compliance"],
    description="The Do-Not-Call store (view `dnc`): every number as E.164 with its source, reason, load and "
    "snapshot date. Append-only; files in CALLARO_HOME/dnc/inbox/<source>/ are loaded in bulk. A file with no "
    "usable line or a full snapshot that shrank unexpectedly fails closed and loads nothing.",
)
@withhold_error_details
def dnc_lists(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    loaded, failures = [], []
    for source, path in waiting_dnc_files(warehouse.paths.dnc_files / "inbox"):
        try:
            with warehouse.transaction() as con:
                result = import_dnc_file(con, path, source=source)
        except CallaroError as error:
            failures.append(f"{path.name} ({source}): {error}")
            continue
        done = path.parent / "loaded"
        done.mkdir(exist_ok=True)
        path.replace(done / path.name)
        loaded.append(
            {"source": source, "file": path.name, "numbers": result.rows_loaded, "rejected_lines": result.rows_rejected}
        )
    if failures:
        raise dg.Failure(description="DNC load failed closed: " + "; ".join(failures), allow_retries=False)
    return dg.MaterializeResult(metadata={"loads": dg.MetadataValue.json(loaded), "files": len(loaded)})
