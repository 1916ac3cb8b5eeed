-- Contacts whose lead source is a webinar (case and surrounding spaces ignored).
select c.*
from {{ ref('stg_contacts') }} as c
where lower(trim(c.lead_source)) = 'webinar'
