-- Singular test: the freshness segment never returns a contact last updated more than 30 days ago
-- (or never updated). Returns the offending contact ids; zero rows passes.
select contact_id, updated_at
from {{ ref('seg_fresh_30d') }}
where updated_at is null
   or updated_at < {{ utc_now() }} - interval 30 day
