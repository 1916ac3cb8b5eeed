-- Contacts added or changed in the last 30 days. The cut-off is computed when the view is queried,
-- so the segment stays current without a rebuild.
select c.*
from {{ ref('stg_contacts') }} as c
where c.updated_at >= {{ utc_now() }} - interval 30 day
