"""The attribution log moves here from the attribution app: state only, the table stays
(`attribution_attributionrecord`, with its append-only guard from attribution 0002)."""

import django.db.models.fields.json
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("attribution", "0007_job_worker")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AttributionRecord",
                    fields=[
                        (
                            "sequence",
                            models.BigAutoField(
                                help_text="Position in the chain.",
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("verification", "Verification outcome"),
                                    ("generation", "Completed generation"),
                                    ("generation_failed", "Failed generation"),
                                ],
                                max_length=24,
                            ),
                        ),
                        (
                            "generation_ref",
                            models.CharField(
                                blank=True,
                                db_index=True,
                                help_text=(
                                    "Public id of the generation request; blank if none was made."
                                ),
                                max_length=64,
                            ),
                        ),
                        (
                            "payload",
                            models.JSONField(
                                help_text="What was used and decided; hashed canonically."
                            ),
                        ),
                        ("payload_sha256", models.CharField(max_length=64)),
                        (
                            "previous_hash",
                            models.CharField(
                                help_text="record_hash of the predecessor.", max_length=64
                            ),
                        ),
                        ("record_hash", models.CharField(max_length=64, unique=True)),
                        ("created_at", models.DateTimeField()),
                    ],
                    options={
                        "db_table": "attribution_attributionrecord",
                        "ordering": ["sequence"],
                        "indexes": [
                            models.Index(
                                django.db.models.fields.json.KeyTransform(
                                    "requested_by", "payload"
                                ),
                                name="ita_requested_by",
                            )
                        ],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("payload_sha256__regex", "^[0-9a-f]{64}$"),
                                    ("previous_hash__regex", "^[0-9a-f]{64}$"),
                                    ("record_hash__regex", "^[0-9a-f]{64}$"),
                                ),
                                name="ita_hashes_are_hex64",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    (
                                        "kind__in",
                                        ["verification", "generation", "generation_failed"],
                                    )
                                ),
                                name="ita_kind_known",
                            ),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
