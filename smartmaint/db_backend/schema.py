"""Schema editor: django-timescaledb's, made a no-op where TimescaleDB is not in use."""

from __future__ import annotations

from django.db.models import CompositePrimaryKey
from timescale.db.backends.postgresql.schema import TimescaleSchemaEditor
from timescale.db.models.fields import TimescaleDateTimeField


class DatabaseSchemaEditor(TimescaleSchemaEditor):
    def _create_hypertable(self, model, field, should_migrate=False):
        # Without the extension the table stays a plain PostgreSQL table with
        # the same keys and indexes.
        if self.connection.timescaledb_enabled:
            super()._create_hypertable(model, field, should_migrate)

    def _set_chunk_time_interval(self, model, field):
        if self.connection.timescaledb_enabled:
            super()._set_chunk_time_interval(model, field)

    def _drop_primary_key(self, model):
        # django-timescaledb drops the primary key because a surrogate `id`
        # key cannot live on a hypertable. A composite key that contains the
        # time column is allowed by TimescaleDB and is exactly the uniqueness
        # we need, so it is kept.
        pk = model._meta.pk
        if isinstance(pk, CompositePrimaryKey) and any(
            isinstance(field, TimescaleDateTimeField) for field in pk.fields
        ):
            return
        super()._drop_primary_key(model)
