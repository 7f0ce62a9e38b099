"""Feature runs rewrite every row, so make those updates HOT (heap-only tuples).

PostgreSQL updates a row in place on its page, without touching any index, when no indexed
column changes and the page has room. Every run changes `feature_run_id` and the RFM columns,
so their indexes (unused by any query) are dropped, and the table keeps half of each page free
(fillfactor 50): the new versions of a page's rows fit beside the old ones, which the next run
prunes. The table is the same size as before in steady state (a run leaves one dead version
per row either way) and an upsert of the whole population costs about a third.

The foreign key of `feature_run_id` loses its database constraint (Django still nulls it when a
FeatureRun is deleted): PostgreSQL checked it for every row of every run, at commit.

ALTER TABLE ... SET (fillfactor) applies to pages written from now on; the next runs move the
rows into that layout (or VACUUM FULL does it at once).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("segmentation", "0003_assignment_bulk_writes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="customerfeatures",
            name="feature_run",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="segmentation.featurerun",
            ),
        ),
        migrations.AlterField(
            model_name="customerfeatures",
            name="rfm_segment",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.RunSQL(
            "ALTER TABLE segmentation_customerfeatures SET (fillfactor = 50)",
            reverse_sql="ALTER TABLE segmentation_customerfeatures RESET (fillfactor)",
        ),
    ]
