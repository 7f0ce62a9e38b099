"""The database itself refuses to change or remove audit entries.

`cdp_append_only_guard(label)` is generic so other append-only tables (the consent ledger) can
attach it with their own label. TRUNCATE is refused whenever the table holds rows; truncating an
empty table destroys nothing, and allowing it lets Django's test flush run.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION cdp_append_only_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    has_rows boolean;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I)', TG_TABLE_SCHEMA, TG_TABLE_NAME)
            INTO has_rows;
        IF NOT has_rows THEN
            RETURN NULL;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only: % on % refused', TG_ARGV[0], TG_OP, TG_TABLE_NAME
        USING HINT = 'entries are never changed or removed; record a new entry instead';
END;
$$;

CREATE TRIGGER audit_auditentry_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION cdp_append_only_guard('audit log');

CREATE TRIGGER audit_auditentry_no_truncate
    BEFORE TRUNCATE ON audit_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION cdp_append_only_guard('audit log');
"""

REVERSE = """
DROP TRIGGER IF EXISTS audit_auditentry_no_truncate ON audit_auditentry;
DROP TRIGGER IF EXISTS audit_auditentry_no_update_delete ON audit_auditentry;
DROP FUNCTION IF EXISTS cdp_append_only_guard();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
