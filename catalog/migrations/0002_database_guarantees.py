"""Guarantees the database keeps even if application code is bypassed:

* the pgvector extension (retrieval builds on it);
* consent versions are append-only: UPDATE and DELETE raise;
* a recording's rights shares sum to 0 (none yet) or exactly 10,000 basis points, checked
  by a deferred constraint trigger at commit so a service can replace shares in one transaction.
"""

from django.db import migrations
from pgvector.django import VectorExtension

APPEND_ONLY = """
CREATE FUNCTION catalog_consent_version_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'consent versions are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER consent_version_append_only
    BEFORE UPDATE OR DELETE ON catalog_consentversion
    FOR EACH ROW EXECUTE FUNCTION catalog_consent_version_append_only();
"""

SHARES_SUM = """
CREATE FUNCTION catalog_rights_shares_sum_check() RETURNS trigger AS $$
DECLARE
    rec_id bigint;
    total bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN rec_id := OLD.recording_id; ELSE rec_id := NEW.recording_id; END IF;
    SELECT COALESCE(SUM(basis_points), 0) INTO total
        FROM catalog_rightsshare WHERE recording_id = rec_id;
    IF total <> 0 AND total <> 10000 THEN
        RAISE EXCEPTION 'rights shares of recording % sum to % basis points, not 10000', rec_id, total
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.recording_id <> NEW.recording_id THEN
        SELECT COALESCE(SUM(basis_points), 0) INTO total
            FROM catalog_rightsshare WHERE recording_id = OLD.recording_id;
        IF total <> 0 AND total <> 10000 THEN
            RAISE EXCEPTION 'rights shares of recording % sum to % basis points, not 10000',
                OLD.recording_id, total USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER rights_shares_sum
    AFTER INSERT OR UPDATE OR DELETE ON catalog_rightsshare
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION catalog_rights_shares_sum_check();
"""


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]

    operations = [
        VectorExtension(),
        migrations.RunSQL(
            APPEND_ONLY,
            reverse_sql="DROP TRIGGER consent_version_append_only ON catalog_consentversion;"
            "DROP FUNCTION catalog_consent_version_append_only();",
        ),
        migrations.RunSQL(
            SHARES_SUM,
            reverse_sql="DROP TRIGGER rights_shares_sum ON catalog_rightsshare;"
            "DROP FUNCTION catalog_rights_shares_sum_check();",
        ),
    ]
