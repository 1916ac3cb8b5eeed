CREATE TABLE IF NOT EXISTS uploads (
    upload_id VARCHAR NOT NULL,       -- unique: made by landing.new_upload_id, never reused
    campaign VARCHAR NOT NULL,
    original_name VARCHAR,
    stored_path VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT,
    received_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,          -- registered | imported | blocked | failed | undone
    rows_read BIGINT,
    imported BIGINT,
    rejected BIGINT,
    duplicates BIGINT,
    suppressed BIGINT,
    error_report VARCHAR,
    options JSON,                     -- expected_count, default_region, duplicates, mapping_path, sheet
    summary JSON,
    updated_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS raw_columns (
    upload_id VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    name VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS raw_rows (
    upload_id VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    cells VARCHAR[]
);
CREATE TABLE IF NOT EXISTS raw_malformed (
    upload_id VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    message VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS campaign_state (
    campaign VARCHAR NOT NULL,        -- one row per campaign (written by MERGE)
    last_upload_id VARCHAR,
    last_mapping JSON,
    last_columns JSON,
    updated_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS rejected_rows (
    upload_id VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    "column" VARCHAR,
    field VARCHAR,
    code VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    value VARCHAR
);
CREATE TABLE IF NOT EXISTS contact_changes (
    change_id VARCHAR NOT NULL,
    changed_at TIMESTAMP NOT NULL,
    changed_by VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    contact_id VARCHAR,
    campaign VARCHAR,
    upload_id VARCHAR,
    detail JSON
);

-- Gate results per upload, written by the asset checks: the guard for runs that did not evaluate them.
CREATE TABLE IF NOT EXISTS upload_checks (
    upload_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    passed BOOLEAN NOT NULL,
    detail VARCHAR,
    metadata JSON,
    evaluated_at TIMESTAMP NOT NULL
);
