"""Compression settings and the ``readings_hourly`` continuous aggregate (no-ops without TimescaleDB).

Policies (compression, retention, aggregate refresh) follow settings and are
applied after every migrate by ``readings.timescale.apply_policies``.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    from readings import timescale

    timescale.enable_compression(schema_editor.connection)
    timescale.create_hourly_aggregate(schema_editor.connection)


def backwards(apps, schema_editor):
    from readings import timescale

    timescale.drop_hourly_aggregate(schema_editor.connection)


class Migration(migrations.Migration):
    # TimescaleDB refuses to create a continuous aggregate inside a transaction block.
    atomic = False

    dependencies = [("readings", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
