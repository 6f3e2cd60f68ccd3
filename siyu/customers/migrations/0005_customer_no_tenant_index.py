"""Customer loses its single-column tenant index: the composite (tenant, …) indexes serve every lookup by tenant
alone, and each index costs its share of every row a bulk import writes (siyu bench identity).

Only the index is dropped (a plain DROP INDEX on SQLite and PostgreSQL alike), instead of the AlterField SQLite would
run by copying the whole table; the model state records the field as `db_index=False`. Identity keeps its tenant
index: on SQLite it is (tenant, rowid), which keyset reads by id within a brand (the leads matcher) need.
"""

import django.db.models.deletion
from django.db import migrations, models

# Django's name for the foreign key's index (the same on every backend).
_INDEX = "customers_customer_tenant_id_b3a9de9f"


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_remove_store_opens_closes"),
        ("customers", "0004_lifecycle_loss"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{_INDEX}"',
                    reverse_sql=f'CREATE INDEX "{_INDEX}" ON "customers_customer" ("tenant_id")',
                )
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="customer",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="core.tenant",
                    ),
                )
            ],
        ),
    ]
