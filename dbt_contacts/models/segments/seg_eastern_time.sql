-- Contacts called on US/Canadian Eastern time (by their resolved IANA time zone).
select c.*
from {{ ref('stg_contacts') }} as c
inner join {{ ref('us_time_zone_regions') }} as r
    on r.timezone = c.timezone
where r.region = 'eastern'
