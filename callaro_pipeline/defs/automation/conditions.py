"""Declarative automation: the per-upload chain follows a `raw_upload` partition materialized on its own.

Picking a `raw_upload` partition in the UI and clicking *Materialize* runs only `raw_upload`; on the automation
sensor's next tick the rest of that upload's chain (mapped → validated + rejected rows → suppressed → contacts)
is requested in one run for the partition, with the blocking gates (Pandera, Great Expectations, DNC) in the
same run, where a failed gate skips what follows. `campaign_audiences` (not partitioned) follows in its own run
once the contacts are merged, so it never races the merge.

Nothing runs twice: a parent's update counts only when the run that made it did not also target the child, so
after an `import_upload` run nothing is requested, not even when it failed or was blocked part-way (`callaro
rerun` is the way on). Across runs, `all_deps_blocking_checks_passed` keeps a child back while a parent's gate
failed, and `contacts` itself refuses an upload whose gates did not all pass.
"""

from __future__ import annotations

import dagster as dg

from callaro_pipeline.defs.run_tags import VIA_TAG

AC = dg.AutomationCondition
AUTOMATION_SENSOR = "upload_chain_automation_sensor"
# The tag of the runs callaro starts itself (`callaro import` / `rerun`, the drop-folder sensor and schedule):
# whole `import_upload` runs, launched without an asset selection, which `executed_with_root_target` needs.
WHOLE_CHAIN_RUN_TAG = VIA_TAG


def updated_by_another_run() -> dg.AutomationCondition:
    """A parent updated since the last tick by a run that did not itself target the asset evaluated."""
    return (AC.newly_updated() & ~AC.executed_with_root_target() & ~updated_by_a_whole_chain_run()).with_label(
        "updated_by_another_run"
    )


def updated_by_a_whole_chain_run() -> dg.AutomationCondition:
    """The partition's updates since the last tick all came from whole-chain runs, or its latest one did.

    `executed_with_tags` alone looks at the asset's latest materialization: after parallel imports that is
    another upload's, and a whole-chain run's update then counted as another run's (the chain of an import that
    ended part-way was run again). `all_new_updates_have_run_tags` decides per partition, but has nothing to
    compare against on the first tick of a new instance, which the latest materialization covers."""
    whole_chain = {WHOLE_CHAIN_RUN_TAG}
    return (
        AC.all_new_updates_have_run_tags(tag_keys=whole_chain) | AC.executed_with_tags(tag_keys=whole_chain)
    ).with_label("updated_by_a_whole_chain_run")


def follows_its_upload() -> dg.AutomationCondition:
    """A per-upload asset after `raw_upload`: requested for a partition whose parent was updated by a run that
    did not target this asset, or will be requested on this tick (so the chain joins one run); never while a
    parent is missing or running, and only when every blocking gate of its parents passed or runs with it."""
    parent_updated = AC.any_deps_match(updated_by_another_run() | AC.will_be_requested())
    return (
        parent_updated.since_last_handled()
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & AC.all_deps_blocking_checks_passed()
    ).with_label("follows_its_upload")


def runs_with_its_asset() -> dg.AutomationCondition:
    """A blocking gate: requested with its asset, so it runs in the same run and blocks what follows there."""
    return AC.any_deps_match(AC.will_be_requested()).with_label("runs_with_its_asset")


def follows_merged_contacts() -> dg.AutomationCondition:
    """`campaign_audiences`: rebuilt after a `contacts` partition was merged by a run that did not build the
    audiences as well (an `import_upload` run builds its campaign's), once nothing it reads is running. Not
    requested in the same tick as `contacts`: a separate run then could build before the merge."""
    contacts_merged = AC.any_deps_match(updated_by_another_run()).allow(dg.AssetSelection.assets("contacts"))
    return (contacts_merged.since_last_handled() & ~AC.any_deps_in_progress() & ~AC.in_progress()).with_label(
        "follows_merged_contacts"
    )


def build_automation_sensor(target: dg.AssetSelection) -> dg.AutomationConditionSensorDefinition:
    """Running by default (unlike the drop-folder sensor and the schedule, which start imports on their own):
    it only continues a chain someone started, and needs the daemon (`dagster dev` / `callaro ui` runs it)."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=target,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        # one run per upload partition (like `import_upload`), never a backfill
        emit_backfills=False,
        description="Continues an upload's chain after its raw_upload partition was materialized on its own "
        "(UI Materialize): the rest of the chain in one run with the blocking gates, then the audiences. "
        "Requests nothing after an import_upload run, which runs the whole chain itself.",
    )
