"""Event.customer loses its per-row foreign-key check; the database still refuses to delete a
customer that has events (see the field's comment in cdp/ingest/models.py)."""

import django.db.models.deletion
from django.db import migrations, models

PROTECT = """
CREATE FUNCTION ingest_event_customer_protect() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Runs once the row is locked, so after any batch that locked the customer for its events
    -- has committed, and each statement here sees what such batches committed.
    IF EXISTS (SELECT 1 FROM ingest_event WHERE customer_id = OLD.id) THEN
        RAISE EXCEPTION 'a customer still has events: delete them first'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER ingest_event_customer_protect BEFORE DELETE ON profiles_customer
    FOR EACH ROW EXECUTE FUNCTION ingest_event_customer_protect();
"""

UNPROTECT = """
DROP TRIGGER IF EXISTS ingest_event_customer_protect ON profiles_customer;
DROP FUNCTION IF EXISTS ingest_event_customer_protect();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0008_event_source_checked_per_batch"),
        ("profiles", "0003_merge"),
    ]

    operations = [
        migrations.AlterField(
            model_name="event",
            name="customer",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="profiles.customer",
            ),
        ),
        migrations.RunSQL(PROTECT, UNPROTECT),
    ]
