"""Guarantee the database keeps even if application code is bypassed: the attribution log is
append-only. UPDATE and DELETE raise for every row; TRUNCATE raises unless the table is
already empty (Django's test flush truncates every table, and emptying an empty log loses
nothing).

Someone who can disable triggers (the table owner or a superuser) can still change rows; the
hash chain makes that visible (`manage.py verify_attribution_log`).
"""

from django.db import migrations

TABLE = "attribution_attributionrecord"

APPEND_ONLY = f"""
CREATE FUNCTION attribution_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the attribution log (%) is append-only: % is not allowed',
        TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION attribution_log_no_truncate() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM {TABLE}) THEN
        RAISE EXCEPTION 'the attribution log (%) is append-only: % is not allowed',
            TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER attribution_log_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION attribution_log_append_only();
CREATE TRIGGER attribution_log_no_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION attribution_log_no_truncate();
"""

REVERSE = f"""
DROP TRIGGER attribution_log_no_truncate ON {TABLE};
DROP TRIGGER attribution_log_no_update_delete ON {TABLE};
DROP FUNCTION attribution_log_no_truncate();
DROP FUNCTION attribution_log_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("attribution", "0001_initial")]

    operations = [migrations.RunSQL(APPEND_ONLY, reverse_sql=REVERSE)]
