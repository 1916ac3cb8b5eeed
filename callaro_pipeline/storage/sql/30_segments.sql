-- Filter segments made without SQL (`callaro segment create NAME --where ...`): one row per condition.
-- The generated dbt models read their values from here, so user input is data and never SQL text.
CREATE TABLE IF NOT EXISTS segment_filters (
    segment VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    field VARCHAR NOT NULL,           -- allowlisted: a contacts column or custom.<declared field>
    operator VARCHAR NOT NULL,        -- allowlisted: = != in "not in" contains starts_with >= <= is_null not_null
    value_json JSON,                  -- a string, a list of strings, or null
    created_at TIMESTAMP              -- (segment, position) is unique: a segment is replaced whole
);
