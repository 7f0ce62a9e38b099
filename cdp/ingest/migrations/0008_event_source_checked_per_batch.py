"""Event.source loses its per-row foreign-key check; the database still refuses to delete a
source that has events (see the field's comment in cdp/ingest/models.py)."""

import django.db.models.deletion
from django.db import migrations, models

PROTECT = """
CREATE FUNCTION ingest_source_protect() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Runs once the row is locked, so after any batch that locked it for its events has
    -- committed, and each statement here sees what such batches committed.
    IF EXISTS (SELECT 1 FROM ingest_event WHERE source_id = OLD.id) THEN
        RAISE EXCEPTION 'source % still has events: revoke it instead', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER ingest_source_protect BEFORE DELETE ON ingest_source
    FOR EACH ROW EXECUTE FUNCTION ingest_source_protect();
"""

UNPROTECT = """
DROP TRIGGER IF EXISTS ingest_source_protect ON ingest_source;
DROP FUNCTION IF EXISTS ingest_source_protect();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0007_import_role_groups"),
    ]

    operations = [
        migrations.AlterField(
            model_name="event",
            name="source",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="ingest.source",
            ),
        ),
        migrations.RunSQL(PROTECT, UNPROTECT),
    ]
