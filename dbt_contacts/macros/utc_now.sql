{#- The current time as a UTC TIMESTAMP, like the pipeline's created_at / updated_at columns. -#}
{% macro utc_now() -%}
    (now() at time zone 'UTC')
{%- endmacro %}
