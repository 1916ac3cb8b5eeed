-- Per-upload stages (rows replaced per upload_id in one transaction) and the contact book.
CREATE TABLE IF NOT EXISTS mapped_contacts (
    upload_id VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    external_id VARCHAR, first_name VARCHAR, last_name VARCHAR, full_name VARCHAR, company VARCHAR,
    phone VARCHAR, email VARCHAR, timezone VARCHAR, country VARCHAR, state VARCHAR, postal_code VARCHAR,
    lead_source VARCHAR, consent VARCHAR, consent_date VARCHAR, consent_source VARCHAR,
    custom_fields JSON
);
CREATE TABLE IF NOT EXISTS validated_contacts (
    upload_id VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    phone_e164 VARCHAR NOT NULL,
    phone_extension VARCHAR,
    phone_type VARCHAR,
    phone_region VARCHAR,
    phone_state VARCHAR,
    external_id VARCHAR, first_name VARCHAR, last_name VARCHAR, full_name VARCHAR, company VARCHAR,
    email VARCHAR, country VARCHAR, state VARCHAR, postal_code VARCHAR, lead_source VARCHAR,
    consent VARCHAR, consent_date VARCHAR, consent_source VARCHAR,
    timezone VARCHAR,
    timezone_candidates VARCHAR[],
    timezone_source VARCHAR NOT NULL,
    custom_fields JSON
);
CREATE TABLE IF NOT EXISTS suppressed_contacts (
    upload_id VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    phone_e164 VARCHAR NOT NULL,
    reasons VARCHAR[] NOT NULL,       -- e.g. dnc:internal, dnc:national, no_consent
    checked_at TIMESTAMP NOT NULL
);
-- One row per person (key: E.164 phone); contact_id is derived from the key so call results tie back.
-- The key is kept by the one writer, contact_book.merge_upload_into_book (one row per phone per upload,
-- inserted only when absent), not by PRIMARY KEY / UNIQUE: DuckDB's ART indexes on millions of text keys
-- made each million-row upload tens of seconds slower, grew with the book, held GBs in memory, and turned
-- an UPDATE of existing contacts into minutes (measured: 838k rows, 273 s with the indexes, 8 s without).
CREATE TABLE IF NOT EXISTS contacts (
    contact_id VARCHAR NOT NULL,
    phone_e164 VARCHAR NOT NULL,
    phone_extension VARCHAR, phone_type VARCHAR, phone_region VARCHAR, phone_state VARCHAR,
    first_name VARCHAR, last_name VARCHAR, full_name VARCHAR, company VARCHAR, email VARCHAR,
    country VARCHAR, state VARCHAR, postal_code VARCHAR,
    timezone VARCHAR, timezone_candidates VARCHAR[], timezone_source VARCHAR,
    external_id VARCHAR, lead_source VARCHAR,
    consent VARCHAR, consent_date VARCHAR, consent_source VARCHAR,
    custom_fields JSON,
    first_upload_id VARCHAR, last_upload_id VARCHAR, source_row BIGINT,
    created_at TIMESTAMP, updated_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS campaign_contacts (
    campaign VARCHAR NOT NULL,
    contact_id VARCHAR NOT NULL,
    upload_id VARCHAR NOT NULL,
    row_number BIGINT,
    added_at TIMESTAMP NOT NULL
);
-- Audience builds are frozen: every build keeps its members; campaign_audiences shows the latest build.
CREATE TABLE IF NOT EXISTS audience_builds (
    build_id VARCHAR PRIMARY KEY,
    campaign VARCHAR NOT NULL,
    built_at TIMESTAMP NOT NULL,
    members BIGINT NOT NULL,
    missing_required BIGINT NOT NULL,
    detail JSON
);
CREATE TABLE IF NOT EXISTS audience_members (
    build_id VARCHAR NOT NULL,
    campaign VARCHAR NOT NULL,
    contact_id VARCHAR NOT NULL,
    phone_e164 VARCHAR NOT NULL,
    timezone VARCHAR,
    timezone_candidates VARCHAR[],
    timezone_source VARCHAR,
    external_id VARCHAR,
    next_call_start_utc TIMESTAMP,
    agent_variables JSON,
    dnc_snapshot JSON,                -- the DNC loads it was checked against
    consent_evidence JSON
);
