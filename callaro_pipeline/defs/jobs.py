"""The jobs: one upload end to end, the segment and audience rebuild, the DNC refresh."""

import dagster as dg

from callaro_pipeline.defs.audiences import assets as audiences
from callaro_pipeline.defs.contact_book import assets as contact_book
from callaro_pipeline.defs.dnc import assets as dnc
from callaro_pipeline.defs.ingest import assets as ingest
from callaro_pipeline.defs.segments import assets as segments
from callaro_pipeline.defs.suppress import assets as suppression
from callaro_pipeline.defs.validate import assets as validation

FIRST_STAGE = dg.AssetSelection.assets(ingest.raw_upload)
UPLOAD_CHAIN = dg.AssetSelection.assets(
    ingest.raw_upload,
    validation.mapped_contacts,
    "validated_contacts",
    "rejected_rows",
    suppression.suppressed_contacts,
    contact_book.contacts,
    audiences.campaign_audiences,
)

import_upload_job = dg.define_asset_job(
    "import_upload",
    selection=UPLOAD_CHAIN,
    description="Imports one upload end to end in one run, so its blocking gates stop what follows: raw file → "
    "mapped → validated (Pandera, Great Expectations) → DNC/consent suppression → contact book → the campaign's "
    "audience.",
)
rebuild_segments_job = dg.define_asset_job(
    "rebuild_segments_and_audiences",
    selection=dg.AssetSelection.assets(segments.segment_models, audiences.campaign_audiences),
    description="dbt build of the segment models (with their tests), then every campaign's audience.",
)
refresh_dnc_job = dg.define_asset_job(
    "refresh_dnc",
    selection=dg.AssetSelection.assets(dnc.dnc_lists),
    description="Loads DNC files waiting in CALLARO_HOME/dnc/inbox/<source>/ (fails closed on junk or shrinkage).",
)
