"""The Dagster UI as the data team sees it: a real webserver on loopback over a temporary CALLARO_HOME with two
imports (one imported, one blocked by a gate), read through its GraphQL API and in Debian's headless Chromium.

One webserver serves every test of this module (it takes ~15 s to load the code location). The browser test
skips with a message where /usr/bin/chromium is missing (`apt-get install -y chromium`; .ci/run tries that).
It saves screenshots under its tmp_path; docs/ui-asset.png (the README's picture) is written when it is
missing or when CALLARO_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callaro_pipeline.cli.app import main
from callaro_pipeline.core.project_paths import PROJECT_ROOT
from callaro_pipeline_tests.conftest import install_callaro_env, running

SAMPLE = PROJECT_ROOT / "data" / "samples" / "demo_contacts.csv"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GATES = ("pandera_validated_contacts", "great_expectations_upload", "dnc_lists_usable")
README_SCREENSHOT = PROJECT_ROOT / "docs" / "ui-asset.png"
STARTUP_SECONDS = 180


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _import(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["import", *args, "--json"])
    return json.loads(out.getvalue().strip().splitlines()[-1])


def graphql(base: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    assert not answer.get("errors"), answer["errors"]
    return answer["data"]


LOCATIONS_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def _wait_until_served(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=5):
                pass
            entries = graphql(base, LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"dagster-webserver did not answer within {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`dagster-webserver` on a free loopback port over a fresh CALLARO_HOME with two imports (made while the
    webserver loads its code location: it reads the instance per request)."""
    from callaro_pipeline.cli.runner import dagster_instance

    base_dir = tmp_path_factory.mktemp("ui")
    with pytest.MonkeyPatch.context() as monkeypatch:
        home = install_callaro_env(base_dir, monkeypatch)
        dagster_instance().get_runs(
            limit=1
        )  # the instance's dagster.yaml and storage exist before two processes share it
        port = _free_port()
        # the webserver of this very environment (what `uv run dagster-webserver` starts)
        executable = shutil.which("dagster-webserver", path=str(Path(sys.executable).parent)) or "dagster-webserver"
        log = base_dir / "webserver.log"
        # its own process group: the code server it starts goes down with it
        command = [executable, "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
        with running(command, {**os.environ, "DAGSTER_HOME": str(home / "dagster")}, log) as proc:
            base = f"http://127.0.0.1:{port}"
            imported = _import(str(SAMPLE), "--campaign", "spring")
            assert imported["status"] == "imported", imported
            blocked = _import(str(SAMPLE), "--campaign", "autumn", "--expected-count", "500")
            assert blocked["status"] == "blocked", blocked
            _wait_until_served(base, proc, log)
            yield {"base": base, "home": home, "imported": imported, "blocked": blocked, "tmp": base_dir}


MATERIALIZATION_QUERY = """
query ($path: [String!]!, $partition: String!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(partitions: [$partition], limit: 1) {
        partition
        metadataEntries {
          label
          ... on MarkdownMetadataEntry { mdStr }
          ... on PathMetadataEntry { path }
          ... on IntMetadataEntry { intValue }
        }
      }
    }
  }
}
"""
CHECKS_QUERY = """
query ($path: [String!]!, $check: String!) {
  assetCheckExecutions(assetKey: {path: $path}, checkName: $check, limit: 10) {
    partition
    status
    evaluation {
      success
      description
      metadataEntries { label ... on MarkdownMetadataEntry { mdStr } }
    }
  }
}
"""
GATE_ASSETS = {
    "pandera_validated_contacts": "validated_contacts",
    "great_expectations_upload": "validated_contacts",
    "dnc_lists_usable": "suppressed_contacts",
}


def _metadata(base: str, asset: str, partition: str) -> dict[str, Any]:
    data = graphql(base, MATERIALIZATION_QUERY, {"path": [asset], "partition": partition})
    (materialization,) = data["assetOrError"]["assetMaterializations"]
    assert materialization["partition"] == partition
    return {
        entry["label"]: entry.get("mdStr", entry.get("path", entry.get("intValue")))
        for entry in materialization["metadataEntries"]
    }


def _check_executions(base: str, check: str) -> dict[str, dict[str, Any]]:
    data = graphql(base, CHECKS_QUERY, {"path": [GATE_ASSETS[check]], "check": check})
    return {execution["partition"]: execution for execution in data["assetCheckExecutions"]}


def test_graphql_shows_the_import_summary_and_the_gates(webserver: dict[str, Any]) -> None:
    base, imported, blocked = webserver["base"], webserver["imported"], webserver["blocked"]
    upload_id = imported["upload_id"]

    contacts = _metadata(base, "contacts", upload_id)
    assert "### Import summary" in contacts["import_summary"]
    assert upload_id in contacts["import_summary"]
    assert f"| imported | {imported['imported']} |" in contacts["import_summary"]
    assert f"**{imported['imported']} imported**" in contacts["import_status"]
    assert len(contacts["import_status"]) < 1000  # the UI shows shorter markdown inline
    for gate in GATES:
        assert f"| {gate} | passed |" in contacts["gates"]
        assert gate in contacts["import_summary"]
    assert "| invalid_phone | 2 |" in contacts["rejected_by_code"]
    assert contacts["error_report"] == imported["error_report"]
    assert contacts["data_docs"].endswith("index.html")
    assert "time-zone source" in contacts["phone_types_and_timezones"]
    assert contacts["imported"] == imported["imported"]

    validated = _metadata(base, "validated_contacts", upload_id)
    assert "### Import summary" in validated["import_summary"]
    assert "phone type" in validated["phone_types_and_timezones"]
    assert "*" in validated["preview_masked"]  # masked, never whole
    rejected = _metadata(base, "rejected_rows", upload_id)
    assert "| duplicate | 2 |" in rejected["rejected_by_code"]

    for gate in GATES:
        executions = _check_executions(base, gate)
        assert executions[upload_id]["status"] == "SUCCEEDED", gate
        assert executions[upload_id]["evaluation"]["success"] is True
        assert executions[upload_id]["evaluation"]["description"]

    # the blocked upload: the failed gate carries the summary and the reason in words; nothing downstream ran
    failed = _check_executions(base, "great_expectations_upload")[blocked["upload_id"]]
    assert failed["evaluation"]["success"] is False
    assert "500" in failed["evaluation"]["description"]
    entries = {entry["label"]: entry.get("mdStr") for entry in failed["evaluation"]["metadataEntries"]}
    assert "blocked** by gate `great_expectations_upload`" in entries["import_status"]
    assert "500 were expected" in entries["import_status"] or "500" in entries["import_status"]
    assert "| status | blocked |" in entries["import_summary"]
    data = graphql(base, MATERIALIZATION_QUERY, {"path": ["contacts"], "partition": blocked["upload_id"]})
    assert data["assetOrError"]["assetMaterializations"] == []


def test_metadata_in_the_ui_carries_no_contact_data(webserver: dict[str, Any]) -> None:
    """Every metadata entry and check result of the import, as the UI receives it, without a whole phone,
    e-mail or name of the sample file."""
    base, upload_id = webserver["base"], webserver["imported"]["upload_id"]
    shown = json.dumps(
        [_metadata(base, asset, upload_id) for asset in ("raw_upload", "mapped_contacts", "validated_contacts")]
        + [_metadata(base, asset, upload_id) for asset in ("rejected_rows", "suppressed_contacts", "contacts")]
        + [_check_executions(base, gate) for gate in GATES]
    )
    import polars as pl

    sample = pl.read_csv(SAMPLE, infer_schema=False)
    for column in sample.columns:
        if any(word in column.lower() for word in ("phone", "mail", "name")):
            for value in sample[column].drop_nulls().to_list():
                value = value.strip()
                if len(value) >= 6:
                    assert value not in shown, f"{column} value leaked into the UI metadata"


@pytest.mark.browser
def test_browser_shows_the_asset_graph_the_import_summary_and_the_checks(
    webserver: dict[str, Any], tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: install Debian's Chromium (apt-get install -y chromium) to run this test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    base, imported, blocked = webserver["base"], webserver["imported"], webserver["blocked"]
    upload_id = imported["upload_id"]

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(60_000)
            # The first visit of an instance greets, a second after the page loads, with a "Join the Dagster
            # community" dialog whose backdrop swallows clicks; the UI skips it once the browser remembers a
            # dismissal (its `communityNux` localStorage key, JSON), so remember one before any page loads.
            # (Clicking its Skip button raced a loaded machine: the dialog came late and hid the summary.)
            page.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")

            # the asset graph: the stage groups of the flow
            page.goto(f"{base}/asset-groups")
            for group in ("ingest", "validate", "suppress", "contact_book", "segments", "audiences"):
                page.get_by_text(group, exact=True).first.wait_for()
            page.screenshot(path=str(tmp_path / "asset-graph.png"))

            # the validate group expanded: the upload's assets with their partitions and checks
            page.goto(f"{base}/locations/__repository__@callaro_pipeline/asset-groups/validate")
            page.get_by_text("validated_contacts", exact=True).first.wait_for()
            page.get_by_text("rejected_rows", exact=True).first.wait_for()
            page.wait_for_function("() => !document.body.innerText.includes('Loading')")
            page.screenshot(path=str(tmp_path / "validate-group.png"))

            # the contact book asset, on the upload's partition: the import at a glance
            page.goto(f"{base}/assets/contacts?view=partitions&partition={upload_id}")
            page.get_by_text("import_status", exact=True).first.wait_for()
            labels = ("gates", "rejected_by_code", "phone_types_and_timezones", "error_report", "data_docs")
            expected = [
                upload_id,
                f"{imported['imported']} imported",
                *GATES,
                *labels,
                "invalid_phone",
                "time-zone source",
            ]
            # the labels come before their values: the UI renders markdown values once its lazy chunk has loaded
            # (a loaded machine read the page in between), so wait for every value, then say which one is missing
            with contextlib.suppress(sync_api.TimeoutError):
                page.wait_for_function("(texts) => texts.every(t => document.body.innerText.includes(t))", arg=expected)
            body = page.inner_text("body")
            for text in expected:
                assert text in body, text
            page.screenshot(path=str(tmp_path / "contacts-partition.png"), full_page=True)
            if not README_SCREENSHOT.exists() or os.environ.get("CALLARO_UPDATE_SCREENSHOTS") == "1":
                README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.get_by_text("Hide navigation").click()  # more room for the metadata
                page.get_by_text("import_status", exact=True).first.scroll_into_view_if_needed()
                page.screenshot(path=str(README_SCREENSHOT))

            # the full import summary opens from its metadata row
            page.get_by_text("[Show Markdown]").last.click()
            page.get_by_text("Import summary", exact=False).first.wait_for()
            summary_text = page.inner_text("body")
            assert "rows read" in summary_text and "Problems by code" in summary_text
            page.screenshot(path=str(tmp_path / "import-summary.png"))
            page.keyboard.press("Escape")

            # the gates on validated_contacts: blocking checks, described; the latest (blocked) upload's reason
            page.goto(f"{base}/assets/validated_contacts?view=checks")
            page.get_by_text("great_expectations_upload").first.wait_for()
            checks_text = page.inner_text("body")
            assert "pandera_validated_contacts" in checks_text
            assert "blocking asset check" in checks_text
            page.get_by_text("great_expectations_upload").first.click()
            page.get_by_text(blocked["upload_id"]).first.wait_for()
            assert "500 were expected" in page.inner_text("body")
            page.screenshot(path=str(tmp_path / "checks.png"))
        finally:
            browser.close()
    for name in ("asset-graph.png", "validate-group.png", "contacts-partition.png", "checks.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name


def test_every_asset_and_check_is_described_owned_and_kinded() -> None:
    from callaro_pipeline.definitions import loaded_definitions

    defs = loaded_definitions()

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} has no description"
        assert node.owners, f"{key.to_user_string()} has no owner"
        assert node.kinds & {"duckdb", "polars", "dbt"}, f"{key.to_user_string()} has no kind"
    for check_key in graph.asset_check_keys:
        assert graph.get_check_spec(check_key).description, f"check {check_key.name} has no description"


def test_the_status_line_stays_inline_and_names_the_blocking_gate() -> None:
    from callaro_pipeline.defs.metadata import status_markdown, upload_metadata

    summary = {
        "upload_id": "spring-1",
        "campaign": "spring",
        "status": "blocked",
        "rows_read": 1200,
        "imported": 0,
        "rejected": 700,
        "duplicates": 3,
        "suppressed": 0,
        "problems_by_code": {"invalid_phone": 690, "missing_required": 10},
        "checks": [
            {"name": "pandera_validated_contacts", "passed": True, "detail": "ok"},
            {"name": "great_expectations_upload", "passed": False, "detail": "rejected share 58% " * 40},
        ],
        "timezones": {f"Zone/{n}": n for n in range(1, 30)},
    }
    status = status_markdown(summary)
    assert status.startswith("**blocked** by gate `great_expectations_upload`")
    assert "1,200 rows read" in status and "**FAILED**" in status
    assert len(status) < 1000  # the UI renders markdown inline below 1,000 characters
    metadata = upload_metadata(summary)
    assert list(metadata)[:3] == ["import_status", "gates", "rejected_by_code"]
    assert "(others)" in metadata["phone_types_and_timezones"].value  # long lists are cut to the largest
    assert "| status | blocked |" in metadata["import_summary"].value
