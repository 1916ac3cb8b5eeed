{#
    Views must not name the database (DuckDB's catalog = the file's stem, `warehouse`): the analysts'
    read-only copy `warehouse_read.duckdb` opens under another catalog name, and a view reading
    "warehouse"."main"."contacts" fails there. ref() and source() therefore render schema.table only;
    an unqualified catalog resolves to the database holding the view, under any file name or ATTACH alias.
#}
{% macro ref() %}
    {%- set version = kwargs.get('version') or kwargs.get('v') -%}
    {%- if (varargs | length) == 1 -%}
        {%- set relation = builtins.ref(varargs[0], version=version) -%}
    {%- else -%}
        {%- set relation = builtins.ref(varargs[0], varargs[1], version=version) -%}
    {%- endif -%}
    {%- do return(relation.include(database=false)) -%}
{% endmacro %}

{% macro source(source_name, table_name) %}
    {%- do return(builtins.source(source_name, table_name).include(database=false)) -%}
{% endmacro %}
