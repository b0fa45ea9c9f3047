#!/bin/sh
# One-shot in temporalio/admin-tools: create Temporal's two PostgreSQL databases and bring their schemas up
# to this image's version. Safe to run again: `create` skips a database that exists, `setup-schema -v 0.0`
# skips a versioned one, and `update-schema` only applies the migrations a database has not had yet.
set -eu
: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}" "${POSTGRES_USER:?POSTGRES_USER is required}" "${SQL_PASSWORD:?SQL_PASSWORD is required}"

SCHEMA_DIR=/etc/temporal/schema/postgresql/v12
sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" -u "$POSTGRES_USER" "$@"
}

for database in temporal temporal_visibility; do
    case "$database" in
        temporal) versioned="$SCHEMA_DIR/temporal/versioned" ;;
        *) versioned="$SCHEMA_DIR/visibility/versioned" ;;
    esac
    sql_tool --db "$database" create
    sql_tool --db "$database" setup-schema -v 0.0
    sql_tool --db "$database" update-schema -d "$versioned"
done
echo "Temporal schemas are up to date"
