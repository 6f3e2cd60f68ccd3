"""Per-weekday opening hours: Store.hours (a weekly schedule) and Store.temporarily_closed.

Each store's single opens_at/closes_at pair becomes the same interval on every weekday, read the way the locator
read it (closing not after opening: past midnight; equal: 24 hours). 0004 then drops the two old columns.
"""

from django.db import migrations, models

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
BATCH = 2000


def _hhmm(value):
    return value.strftime("%H:%M")


def daily_from_pair(apps, schema_editor):
    Store = apps.get_model("core", "Store")
    stores = Store.objects.filter(opens_at__isnull=False, closes_at__isnull=False).only("id", "opens_at", "closes_at")
    batch = []
    for store in stores.iterator(chunk_size=BATCH):
        # Seconds were never kept (the console and the import cut them); a schedule is kept in minutes.
        interval = [_hhmm(store.opens_at), _hhmm(store.closes_at)]
        store.hours = {day: [list(interval)] for day in WEEKDAYS}
        batch.append(store)
        if len(batch) >= BATCH:
            Store.objects.bulk_update(batch, ["hours"])
            batch = []
    Store.objects.bulk_update(batch, ["hours"])


def pair_from_daily(apps, schema_editor):
    """Back to one pair where every day has the same single interval; any other schedule cannot be said with
    one pair and becomes "not set" (the locator then treats the store as open, as it did without hours)."""
    import datetime as dt

    Store = apps.get_model("core", "Store")
    batch = []
    for store in Store.objects.exclude(hours={}).only("id", "hours").iterator(chunk_size=BATCH):
        days = [store.hours.get(day) for day in WEEKDAYS]
        if all(d == days[0] for d in days) and days[0] and len(days[0]) == 1:
            opens, closes = days[0][0]
            store.opens_at, store.closes_at = dt.time.fromisoformat(opens), dt.time.fromisoformat(closes)
            batch.append(store)
    Store.objects.bulk_update(batch, ["opens_at", "closes_at"], batch_size=BATCH)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_store_geo_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="store",
            name="hours",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="store",
            name="temporarily_closed",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(daily_from_pair, pair_from_daily),
    ]
