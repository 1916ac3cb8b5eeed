"""campaign_audiences: per campaign, the callable contacts with their agent variables, frozen per build."""

import time
from datetime import UTC, datetime

import dagster as dg

from callaro_pipeline.core.config import list_campaigns, load_campaign
from callaro_pipeline.core.errors import CallaroError, DncUnavailable
from callaro_pipeline.core.privacy import mask_phone
from callaro_pipeline.defs.automation.conditions import follows_merged_contacts
from callaro_pipeline.defs.contact_book.assets import contacts
from callaro_pipeline.defs.failures import withhold_error_details
from callaro_pipeline.defs.partitions import WAREHOUSE_POOL
from callaro_pipeline.defs.segments.assets import segment_models
from callaro_pipeline.storage.audiences import audience_status, build_audience
from callaro_pipeline.storage.uploads import update_upload
from callaro_pipeline.storage.warehouse import Warehouse

CAMPAIGN_TAG = "callaro/campaign"
UPLOAD_TAG = "callaro/upload_id"
FRESH_UPLOAD_RUNS = ("cli", "inbox")


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
    incremental = bool(tagged) and context.run.tags.get("callaro/via") in FRESH_UPLOAD_RUNS
    for name in names:
        campaign = load_campaign(name, create=True)
        started = time.perf_counter()
        try:
            with warehouse.transaction() as con:
                build = build_audience(con, campaign, now=now, incremental=incremental)
                upload_id = context.run.tags.get(UPLOAD_TAG)
                if upload_id and name == tagged:  # the import's own timing, next to its other stages
                    seconds = round(time.perf_counter() - started, 3)
                    update_upload(
                        con, upload_id, timings={"audience_seconds": seconds}, audience=audience_status(build)
                    )
        except CallaroError as error:
            # a DNC precondition not met (no or stale national list) is a state the audience reports, not a
            # failed run; anything else (a broken rule or campaign file) fails the run, closed
            (not_built if isinstance(error, DncUnavailable) else failures)[name] = str(error)
            upload_id = context.run.tags.get(UPLOAD_TAG)
            if upload_id and name == tagged:  # the summary says why nobody is callable (contract: audience)
                with warehouse.transaction() as con:
                    update_upload(con, upload_id, audience=audience_status(None, str(error)))
            continue
        builds[name] = {
            "build_id": build.build_id,
            "members": build.members,
            "suppressed": build.suppressed,
            "missing_required": build.missing_required,
            "missing_sample_masked": [mask_phone(p) if p and "*" not in p else p for p in build.missing_sample],
            "not_callable": build.not_callable,
        }
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
