"""The database refuses to change or remove consent ledger entries.

Reuses the audit log's generic `cdp_append_only_guard(label)` function (audit migration 0002).
"""

from django.db import migrations

FORWARD = """
CREATE TRIGGER consent_consentevent_no_update_delete
    BEFORE UPDATE OR DELETE ON consent_consentevent
    FOR EACH ROW EXECUTE FUNCTION cdp_append_only_guard('consent ledger');

CREATE TRIGGER consent_consentevent_no_truncate
    BEFORE TRUNCATE ON consent_consentevent
    FOR EACH STATEMENT EXECUTE FUNCTION cdp_append_only_guard('consent ledger');
"""

REVERSE = """
DROP TRIGGER IF EXISTS consent_consentevent_no_truncate ON consent_consentevent;
DROP TRIGGER IF EXISTS consent_consentevent_no_update_delete ON consent_consentevent;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0001_initial"),
        ("audit", "0002_append_only_triggers"),
    ]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
