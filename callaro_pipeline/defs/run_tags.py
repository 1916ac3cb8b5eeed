"""The tags of the runs callaro starts for an upload (`callaro import` / `rerun`, `--submit`, the drop-folder
sensor): assets read them back to know the campaign, the upload and how the run was started."""

from __future__ import annotations

CAMPAIGN_TAG = "callaro/campaign"
UPLOAD_TAG = "callaro/upload_id"
# `cli`, `submit`, `inbox`, ...: only whole `import_upload` runs carry it (see automation/conditions.py)
VIA_TAG = "callaro/via"


def upload_run_tags(campaign: str, upload_id: str, via: str) -> dict[str, str]:
    return {CAMPAIGN_TAG: campaign, UPLOAD_TAG: upload_id, VIA_TAG: via}
