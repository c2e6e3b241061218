"""The attribution log's model now belongs to the attribution_log app (state only)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("attribution", "0007_job_worker"),
        ("attribution_log", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AttributionRecord")],
            database_operations=[],
        ),
    ]
