"""SQL stays data: hostile text in every place a user can put text that reaches DuckDB is refused with a clear
message or stored as inert data, and the contact book is still there afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from callaro_pipeline.cli.app import main
from callaro_pipeline.core.config import load_custom_fields
from callaro_pipeline.core.errors import CallaroError
from callaro_pipeline.core.filter_parser import parse_where
from callaro_pipeline.core.mapping_files import load_mapping_file
from callaro_pipeline_tests.conftest import open_lake, write_csv

DOUBLE = 'x"; DROP TABLE contacts; --'
SINGLE = "x'; DROP TABLE contacts; --"
ATTACKS = [DOUBLE, SINGLE]


def quoted(value: str) -> str:
    """A --where value in the quote it does not contain."""
    return f"'{value}'" if "'" not in value else f'"{value}"'


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def book(home: Path, sql: str = "SELECT count(*) FROM contacts") -> object:
    """Read the live warehouse (the command has finished: no writer holds it)."""
    con = open_lake(home)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_hostile_text_everywhere_a_user_can_type(
    callaro_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # 1. as source column names in the upload's header (one mapped by a mapping file, one left unmapped),
    #    and as cell values
    upload = write_csv(
        tmp_path / "hostile.csv",
        ["Phone Number", "First Name", DOUBLE, SINGLE],
        [
            ["(415) 555-0134", "Ann", DOUBLE, SINGLE],
            ["(212) 555-0199", SINGLE, "webinar", DOUBLE],
            # plain rows: with only hostile lines, ';' splits every line alike and would be taken for the delimiter
            ["(646) 201-7789", "Bo", "referral", ""],
            ["(305) 555-0103", "Cy", "referral", ""],
        ],
    )
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        yaml.safe_dump({"columns": {"Phone Number": "phone", "First Name": "first_name", DOUBLE: "lead_source"}}),
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "import", str(upload), "--campaign", "spring", "--mapping", str(mapping), "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["imported"] == 4
    assert summary["mapping"]["unmapped"] == [SINGLE]
    assert book(callaro_env, "SELECT name FROM raw_columns ORDER BY position") == [
        ("Phone Number",),
        ("First Name",),
        (DOUBLE,),
        (SINGLE,),
    ]
    assert sorted(book(callaro_env, "SELECT first_name, lead_source FROM contacts")) == [
        ("Ann", DOUBLE),
        ("Bo", "referral"),
        ("Cy", "referral"),
        (SINGLE, "webinar"),
    ]

    # 2. as a segment filter's field (refused) and value (bound: matches as text, nothing runs)
    for attack in ATTACKS:
        code, _, err = run(capsys, "segment", "create", "hostile", "--where", f"{attack} = 1", "--dry-run")
        assert code == 2 and "bad --where" in err
    code, out, _ = run(
        capsys, "segment", "create", "hostile", "--where", f"lead_source = {quoted(DOUBLE)}", "--dry-run"
    )
    assert code == 0 and "would hold 1 contacts" in out
    code, out, _ = run(
        capsys, "segment", "create", "hostile", "--where", f"lead_source = {quoted(SINGLE)}", "--dry-run"
    )
    assert code == 0 and "would hold 0 contacts" in out

    # 3. as contacts update/remove --where field (refused), value (bound) and --set field (refused)
    for command in ("update", "remove"):
        extra = ["--set", "company=Acme"] if command == "update" else []
        for attack in ATTACKS:
            code, _, err = run(capsys, "contacts", command, "--where", f"{attack} = 1", *extra, "--yes")
            assert code == 2 and "bad --where" in err
            code, out, _ = run(capsys, "contacts", command, "--where", f"company = {quoted(attack)}", *extra, "--yes")
            assert code == 0 and out.startswith("0 contacts changed")
            code, _, err = run(capsys, "contacts", command, "--where", f"company = {attack}", *extra, "--yes")
            assert code == 2 and "unterminated quote" in err  # unquoted, the quote in it is a syntax error
    for attack in ATTACKS:
        code, _, err = run(capsys, "contacts", "update", "--where", "state is_null", "--set", f"{attack}=1", "--yes")
        assert code == 2 and "cannot set" in err
    code, out, _ = run(
        capsys, "contacts", "update", "--where", "lead_source = webinar", "--set", f"company={DOUBLE}", "--yes"
    )
    assert code == 0 and out.startswith("1 contacts changed")
    assert book(callaro_env, "SELECT company FROM contacts WHERE lead_source = 'webinar'") == [(DOUBLE,)]

    # 4. as campaign names: refused before anything is stored
    for attack in ATTACKS:
        code, _, err = run(capsys, "import", str(upload), "--campaign", attack)
        assert code == 2 and "invalid campaign name" in err
        code, _, err = run(capsys, "audience", attack)
        assert code == 2 and "invalid campaign name" in err

    # the book survived every attempt, with every table the pipeline made
    assert book(callaro_env) == [(4,)]
    tables = {name for (name,) in book(callaro_env, "SELECT table_name FROM information_schema.tables")}
    assert {"contacts", "campaign_contacts", "uploads", "rejected_rows", "segment_filters"} <= tables


@pytest.mark.parametrize("attack", ATTACKS)
def test_custom_field_names_are_identifiers_in_the_registry_and_in_mappings(
    callaro_env: Path, attack: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    registry_file = callaro_env.parent / "config" / "custom_fields.yaml"  # the test's copy of the config
    declared = yaml.safe_load(registry_file.read_text(encoding="utf-8"))
    hostile = {
        **declared,
        "custom_fields": [
            *declared["custom_fields"],
            {"name": attack, "type": "string", "owner": "x", "description": "x"},
        ],
    }
    registry_file.write_text(yaml.safe_dump(hostile), encoding="utf-8")
    with pytest.raises(CallaroError, match="invalid custom field name"):
        load_custom_fields()
    code, _, err = run(capsys, "segment", "create", "any", "--where", "state = CA", "--dry-run")
    assert code == 2 and "invalid custom field name" in err
    registry_file.write_text(yaml.safe_dump(declared), encoding="utf-8")
    registry = load_custom_fields()
    mapping = tmp_path / "m.yaml"
    mapping.write_text(yaml.safe_dump({"columns": {"Plan": f"custom.{attack}"}}), encoding="utf-8")
    with pytest.raises(CallaroError, match="not declared in custom_fields.yaml"):
        load_mapping_file(mapping, ["Plan"], registry)
    with pytest.raises(CallaroError, match="bad --where"):
        parse_where(f"custom.{attack} = 1", registry)
