"""campaign_audiences: per campaign, the callable contacts with their agent variables, frozen per build."""

from datetime import UTC, datetime

import dagster as dg

from callaro_pipeline.core.audiences import build_summary
from callaro_pipeline.core.config import list_campaigns, load_campaign
from callaro_pipeline.core.errors import CallaroError, DncUnavailable
from callaro_pipeline.defs.automation.conditions import follows_merged_contacts
from callaro_pipeline.defs.contact_book.assets import contacts
from callaro_pipeline.defs.failures import withhold_error_details
from callaro_pipeline.defs.partitions import WAREHOUSE_POOL
from callaro_pipeline.defs.run_tags import CAMPAIGN_TAG, UPLOAD_TAG, VIA_TAG
from callaro_pipeline.defs.segments.assets import segment_models
from callaro_pipeline.storage.audiences import build_and_report
from callaro_pipeline.storage.warehouse import Warehouse

FRESH_UPLOAD_RUNS = ("cli", "inbox", "submit")


@dg.asset(
    group_name="audiences",
    deps=[contacts, *segment_models.keys],
    pool=WAREHOUSE_POOL,
    automation_condition=follows_merged_contacts(),
    kinds={"duckdb", "polars"},
    owners=["team:data"],
    description="One row per callable contact per campaign (view over the latest frozen build in "
    "audience_members): E.164 phone, time zone, next allowed call start in UTC, external_id, agent variables, "
    "and the evidence why it is callable (DNC snapshot, consent, time-zone source). Fails closed when a DNC list "
    "cannot be trusted, leaving the previous build current. In an import run only the upload's campaign is "
    "rebuilt; otherwise every campaign.",
)
@withhold_error_details
def campaign_audiences(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    tagged = context.run.tags.get(CAMPAIGN_TAG)
    names = [tagged] if tagged else list_campaigns()
    builds: dict = {}
    failures: dict[str, str] = {}
    not_built: dict[str, str] = {}
    now = datetime.now(UTC)
    # A fresh upload only adds links and updates contacts: its campaign's build can evaluate just those (a rerun
    # may also take links away, and other runs rebuild every campaign in full).
    incremental = bool(tagged) and context.run.tags.get(VIA_TAG) in FRESH_UPLOAD_RUNS
    upload_id = context.run.tags.get(UPLOAD_TAG)
    for name in names:
        campaign = load_campaign(name, create=True)
        # the import's own campaign reports its timing and status into the upload's summary
        own_upload = upload_id if name == tagged else None
        try:
            build = build_and_report(warehouse, campaign, now=now, incremental=incremental, upload_id=own_upload)
        except CallaroError as error:
            # a DNC precondition not met (no or stale national list) is a state the audience reports, not a
            # failed run; anything else (a broken rule or campaign file) fails the run, closed
            (not_built if isinstance(error, DncUnavailable) else failures)[name] = str(error)
            continue
        builds[name] = build_summary(build)
    if failures:
        raise dg.Failure(
            description="audience not built (fail closed), previous build kept: "
            + "; ".join(f"{k}: {v}" for k, v in failures.items()),
            metadata={"built": dg.MetadataValue.json(builds)},
            allow_retries=False,
        )
    return dg.MaterializeResult(
        metadata={
            "builds": dg.MetadataValue.json(builds),
            "campaigns": len(builds),
            "not_built": dg.MetadataValue.json(not_built),
        }
    )
