"""Drop Store.opens_at/closes_at, copied into Store.hours by 0003 (a migration of its own: on PostgreSQL a table
whose rows were just updated in the same transaction cannot be altered)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_store_weekly_hours"),
    ]

    operations = [
        migrations.RemoveField(model_name="store", name="opens_at"),
        migrations.RemoveField(model_name="store", name="closes_at"),
    ]
