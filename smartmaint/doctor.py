"""The checks behind ``manage.py doctor``: every dependency of a running system, one result each.

Each check returns ``Result``\\s with status OK, FAIL (with a one-line remedy)
or SKIP (the dependency is not configured, or cannot be checked because one it
needs failed). ``run_checks`` runs them all and never raises.

Dependency direction: smartmaint sits below the apps (sensors, readings,
mlops) and must not import them at module level. The doctor is the operator's
check of the whole system, so the checks that need an app's names (readings'
hypertable, mlops' registry, sensors' types) import them lazily inside the
function that needs them; importing this module loads no app code, and the
rest of smartmaint never imports this module.
"""

from __future__ import annotations

import math
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.apps import apps
from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

from smartmaint.migrations_table import LEGACY_TABLE, ghost_migrations

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"
DEFAULT_TIMEOUT = 10.0
# Probe objects are written under this prefix and deleted at once.
S3_PROBE_PREFIX = "smartmaint-doctor/"
MAX_LISTED = 10
MAX_DETAIL = 400
UNEXPECTED = "Unexpected error in this check; the message says what failed."


@dataclass(frozen=True)
class Result:
    check: str
    status: str
    detail: str
    remedy: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class CheckTimeout(Exception):
    pass


def _elapsed_ms(start: float) -> str:
    return f"{(time.perf_counter() - start) * 1000:.1f} ms"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return message[:MAX_DETAIL]


def redact(url: str) -> str:
    """``url`` without its password, for output that may end up in a ticket."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" (+{len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")


def within(seconds: float, function: Callable, *args):
    """``function(*args)`` in a daemon thread, given up after ``seconds``.

    For network checks whose libraries have retries and resolvers of their own
    (redis-py, botocore, MLflow, getaddrinfo): whatever they do, the doctor
    answers within the timeout, and a thread still stuck cannot keep the
    process alive. Never used for the database: Django's connections belong to
    their thread (and a test database may serve one connection only).
    """
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # handed to the caller as is
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="doctor-check", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise CheckTimeout(f"no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@contextmanager
def _bounded(connection: BaseDatabaseWrapper, seconds: float) -> Iterator[None]:
    """A transaction whose statements PostgreSQL cancels after ``seconds`` (a lock held by a migration, say)."""
    with transaction.atomic(using=connection.alias):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{int(seconds * 1000)}ms"])
        yield


def _fetch(connection: BaseDatabaseWrapper, sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- Database ------------------------------------------------------------------------------------


def _database_location(connection: BaseDatabaseWrapper) -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return str(db["NAME"])
    return f"{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def _connect_within(connection: BaseDatabaseWrapper, seconds: float) -> None:
    """Connect with libpq's connect_timeout no longer than ``seconds`` (whole seconds, at least 2)."""
    options = connection.settings_dict.setdefault("OPTIONS", {})
    configured = options.get("connect_timeout")
    if connection.vendor == "postgresql":
        options["connect_timeout"] = max(2, min(int(configured or seconds), math.ceil(seconds)))
    try:
        connection.ensure_connection()
    finally:
        if connection.vendor == "postgresql":
            options["connect_timeout"] = configured


def check_database(connection: BaseDatabaseWrapper, timeout: float) -> Result:
    location = _database_location(connection)
    try:
        connect_note = ""
        if connection.connection is None:
            start = time.perf_counter()
            _connect_within(connection, timeout)
            connect_note = f", connected in {_elapsed_ms(start)}"
        with _bounded(connection, timeout):
            start = time.perf_counter()
            _fetch(connection, "SELECT 1")
            round_trip = _elapsed_ms(start)
            if connection.vendor == "postgresql":
                [(version,)] = _fetch(connection, "SELECT current_setting('server_version')")
                server = f"PostgreSQL {version.split()[0]}"
            elif connection.vendor == "sqlite":
                [(version,)] = _fetch(connection, "SELECT sqlite_version()")
                server = f"SQLite {version}"
            else:
                server = connection.display_name
    except Exception as exc:  # any failure to reach it is the finding
        return Result(
            "database",
            FAIL,
            f"{location}: {_first_line(exc)}",
            "Check DATABASE_URL (host, port, name, credentials) and that the server is running and reachable.",
        )
    return Result("database", OK, f"{server} at {location}, query round trip {round_trip}{connect_note}")


# --- TimescaleDB ---------------------------------------------------------------------------------


def check_timescaledb(connection: BaseDatabaseWrapper, timeout: float) -> tuple[Result, bool]:
    """The extension line, and whether TimescaleDB is in use here (so its objects should exist)."""
    mode = settings.TIMESCALEDB
    if connection.vendor != "postgresql":
        return Result("timescaledb", SKIP, f"{connection.display_name}: TimescaleDB applies to PostgreSQL only"), False
    with _bounded(connection, timeout):
        installed = _fetch(connection, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        available = _fetch(connection, "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
    if mode == "off":
        note = " (installed but not used)" if installed else ""
        return Result("timescaledb", SKIP, f"TIMESCALEDB=off: plain PostgreSQL tables{note}"), False
    if installed:
        return Result("timescaledb", OK, f"timescaledb {installed[0][0]} installed (TIMESCALEDB={mode})"), True
    on_server = f"; version {available[0][0]} is available on the server" if available else ""
    if mode == "required":
        if available:
            remedy = (
                "Run manage.py migrate (it creates the extension; needs the CREATE privilege on the database), "
                "or CREATE EXTENSION timescaledb; as a superuser."
            )
        else:
            remedy = (
                "Install TimescaleDB on the server and add it to shared_preload_libraries, "
                "or set TIMESCALEDB=auto to use plain PostgreSQL tables."
            )
        return Result(
            "timescaledb", FAIL, f"not installed in this database (TIMESCALEDB=required){on_server}", remedy
        ), False
    return Result("timescaledb", OK, f"not installed, plain PostgreSQL tables (TIMESCALEDB=auto){on_server}"), False


def _same_interval(connection: BaseDatabaseWrapper, configured: str | None, wanted: str) -> bool:
    [(same,)] = _fetch(connection, "SELECT %s::interval = %s::interval", [configured, wanted])
    return bool(same)


def _job_result(check: str, job: tuple | None, describe: str, missing_detail: str) -> Result | None:
    """FAIL for a missing or paused job, else None (the caller compares its settings)."""
    migrate = "Run manage.py migrate: it re-applies the TimescaleDB policies from the settings."
    if job is None:
        return Result(check, FAIL, missing_detail, migrate)
    job_id, scheduled = job[0], job[1]
    if not scheduled:
        return Result(
            check,
            FAIL,
            f"{describe}: job {job_id} is paused",
            f"SELECT alter_job({job_id}, scheduled => true); (or manage.py migrate to re-create it)",
        )
    return None


def check_timescale_objects(connection: BaseDatabaseWrapper, timeout: float) -> list[Result]:
    """``readings_reading`` a hypertable, and its compression, refresh and retention jobs as the settings say."""
    from readings.timescale import HOURLY_VIEW, READINGS_TABLE

    migrate = "Run manage.py migrate: it re-applies the TimescaleDB policies from the settings."
    with _bounded(connection, timeout):
        if READINGS_TABLE not in connection.introspection.table_names():
            return [Result("hypertable", FAIL, f"table {READINGS_TABLE} does not exist", "Run manage.py migrate.")]
        hypertable = _fetch(
            connection,
            "SELECT num_chunks, compression_enabled FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = %s",
            [READINGS_TABLE],
        )
        if not hypertable:
            return [
                Result(
                    "hypertable",
                    FAIL,
                    f"{READINGS_TABLE} is a plain table (created before TimescaleDB was installed?)",
                    f"Convert it: SELECT create_hypertable('{READINGS_TABLE}', by_range('time'), "
                    "migrate_data => true); then manage.py migrate to add the policies.",
                )
            ]
        chunks, compression = hypertable[0]
        results = [
            Result(
                "hypertable",
                OK,
                f"{READINGS_TABLE} is a hypertable, {chunks} chunk(s), compression "
                + ("enabled" if compression else "not enabled"),
            )
        ]

        jobs = {
            proc: (job_id, scheduled, compress_after, drop_after)
            for job_id, proc, scheduled, compress_after, drop_after in _fetch(
                connection,
                "SELECT job_id, proc_name, scheduled, config->>'compress_after', config->>'drop_after' "
                "FROM timescaledb_information.jobs WHERE hypertable_name = %s "
                "AND proc_name IN ('policy_compression', 'policy_retention')",
                [READINGS_TABLE],
            )
        }

        compress_after = settings.READINGS_COMPRESS_AFTER
        job = jobs.get("policy_compression")
        failed = _job_result(
            "compression_policy", job, "compression policy", f"no compression policy on {READINGS_TABLE}"
        )
        if failed:
            results.append(failed)
        elif not _same_interval(connection, job[2], compress_after):
            results.append(
                Result(
                    "compression_policy",
                    FAIL,
                    f"compresses after {job[2]}, READINGS_COMPRESS_AFTER is {compress_after}",
                    migrate,
                )
            )
        else:
            results.append(Result("compression_policy", OK, f"chunks compressed after {job[2]} (job {job[0]})"))

        aggregate = _fetch(
            connection,
            # The jobs view names the continuous aggregate itself in recent TimescaleDB
            # releases and its materialization hypertable in older ones: accept both.
            "SELECT j.job_id, j.scheduled, j.schedule_interval::text "
            "FROM timescaledb_information.continuous_aggregates c "
            "LEFT JOIN timescaledb_information.jobs j ON j.proc_name = 'policy_refresh_continuous_aggregate' AND ("
            "(j.hypertable_schema = c.view_schema AND j.hypertable_name = c.view_name) OR "
            "(j.hypertable_schema = c.materialization_hypertable_schema "
            "AND j.hypertable_name = c.materialization_hypertable_name)) "
            "WHERE c.view_name = %s",
            [HOURLY_VIEW],
        )
        if not aggregate:
            results.append(
                Result("refresh_policy", FAIL, f"continuous aggregate {HOURLY_VIEW} does not exist", migrate)
            )
        else:
            job_id, scheduled, every = aggregate[0]
            job = None if job_id is None else (job_id, scheduled)
            failed = _job_result(
                "refresh_policy", job, f"refresh of {HOURLY_VIEW}", f"no refresh policy on {HOURLY_VIEW}"
            )
            results.append(
                failed or Result("refresh_policy", OK, f"{HOURLY_VIEW} refreshed every {every} (job {job_id})")
            )

        days = settings.READINGS_RETENTION_DAYS
        job = jobs.get("policy_retention")
        if not days:
            if job is None:
                results.append(
                    Result("retention_policy", OK, "none: READINGS_RETENTION_DAYS not set, readings are kept")
                )
            else:
                results.append(
                    Result(
                        "retention_policy",
                        FAIL,
                        f"drops readings older than {job[3]} but READINGS_RETENTION_DAYS is not set",
                        migrate,
                    )
                )
        else:
            failed = _job_result(
                "retention_policy",
                job,
                "retention policy",
                f"no retention policy on {READINGS_TABLE} (READINGS_RETENTION_DAYS={days})",
            )
            if failed:
                results.append(failed)
            elif not _same_interval(connection, job[3], f"{days} days"):
                results.append(
                    Result(
                        "retention_policy",
                        FAIL,
                        f"drops after {job[3]}, READINGS_RETENTION_DAYS is {days}",
                        migrate,
                    )
                )
            else:
                results.append(Result("retention_policy", OK, f"readings dropped after {job[3]} (job {job[0]})"))
    return results


# --- Migrations ----------------------------------------------------------------------------------


def check_reading_times(connection: BaseDatabaseWrapper, timeout: float) -> Result:
    """No stored reading older than READINGS_MIN_TIME (clock faults stored before ingest refused them)."""
    from readings.models import Reading
    from readings.services import readings_before

    bound = settings.READINGS_MIN_TIME.isoformat()
    with _bounded(connection, timeout):
        if Reading._meta.db_table not in connection.introspection.table_names():
            return Result("reading_times", SKIP, "no readings table yet (run manage.py migrate)")
        stray = readings_before(before=settings.READINGS_MIN_TIME, using=connection.alias)
    if not stray.count:
        return Result("reading_times", OK, f"no reading older than READINGS_MIN_TIME ({bound})")
    return Result(
        "reading_times",
        FAIL,
        f"{stray.count} reading(s) older than READINGS_MIN_TIME ({bound}) on {_listed(stray.sensor_ids)}: "
        "clock faults, hidden from the API, charts and training",
        "See them with manage.py delete_readings; delete them with manage.py delete_readings --yes.",
    )


def _project_apps() -> set[str]:
    """Labels of this project's own apps (top-level packages of the project, not Django's or third parties')."""
    base = Path(settings.BASE_DIR).resolve()
    return {config.label for config in apps.get_app_configs() if Path(config.path).resolve().parent == base}


def check_migrations(connection: BaseDatabaseWrapper, timeout: float) -> list[Result]:
    table = MigrationRecorder.Migration._meta.db_table
    migrate = "Run manage.py migrate."
    results = []
    with _bounded(connection, timeout):
        tables = set(connection.introspection.table_names())
        has_table = table in tables
        recorded = MigrationRecorder(connection).migration_qs.count() if has_table else 0
        legacy = table != LEGACY_TABLE and LEGACY_TABLE in tables

        if has_table:
            results.append(Result("migrations_table", OK, f"{table} holds {recorded} record(s)"))
        else:
            adopt = f" (it adopts the records of {LEGACY_TABLE})" if legacy else ""
            results.append(
                Result(
                    "migrations_table",
                    FAIL,
                    f"{table} (MIGRATIONS_TABLE) does not exist: this database was never migrated under that name",
                    f"Run manage.py migrate{adopt}; if the history is in another table, set MIGRATIONS_TABLE to it.",
                )
            )

        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        pending = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
        if pending and not has_table:
            results.append(Result("unapplied_migrations", FAIL, f"all {len(pending)}: no migration history", migrate))
        elif pending:
            results.append(Result("unapplied_migrations", FAIL, f"{len(pending)}: {_listed(pending)}", migrate))
        else:
            results.append(Result("unapplied_migrations", OK, "none"))

        ghosts = ghost_migrations(connection)
        if ghosts:
            names = [f"{app}.{name}" for app, name in ghosts]
            prune = "; ".join(f"manage.py migrate {app} --prune" for app in sorted({app for app, _ in ghosts}))
            results.append(
                Result(
                    "ghost_migrations",
                    FAIL,
                    f"{len(names)} recorded as applied but missing from the code: {_listed(names)}",
                    f"Deploy the release that has them; if they were removed on purpose: {prune}",
                )
            )
        else:
            results.append(Result("ghost_migrations", OK, "none"))

        if table == LEGACY_TABLE:
            results.append(Result("legacy_migrations_table", SKIP, f"MIGRATIONS_TABLE is {LEGACY_TABLE} itself"))
        elif not legacy:
            results.append(Result("legacy_migrations_table", OK, f"no {LEGACY_TABLE} table"))
        else:
            qn = connection.ops.quote_name
            apps_there = {app for (app,) in _fetch(connection, f"SELECT DISTINCT app FROM {qn(LEGACY_TABLE)}")}
            ours = sorted(apps_there & _project_apps())
            if not ours:
                # A database shared with another Django application: its history, not ours.
                results.append(
                    Result(
                        "legacy_migrations_table",
                        OK,
                        f"{LEGACY_TABLE} exists but records none of this project's apps (another application's)",
                    )
                )
            else:
                if recorded:
                    remedy = (
                        f"Something migrated with the old table name (an older release, or MIGRATIONS_TABLE unset); "
                        f"check that {table} holds the full history, then DROP TABLE {LEGACY_TABLE};"
                    )
                else:
                    remedy = f"Run manage.py migrate: it adopts the records into {table} and drops {LEGACY_TABLE}."
                results.append(
                    Result(
                        "legacy_migrations_table",
                        FAIL,
                        f"leftover {LEGACY_TABLE} with records of {', '.join(ours)} beside {table}",
                        remedy,
                    )
                )
    return results


# --- Cache (Redis) -------------------------------------------------------------------------------


def _redis_client(cache):
    """The redis-py client behind a django-redis or Django's own Redis cache, or None."""
    if hasattr(cache, "client") and hasattr(cache.client, "raw_client"):  # ours, past its circuit breaker
        return cache.client.raw_client()
    if hasattr(cache, "client") and hasattr(cache.client, "get_client"):  # django-redis
        return cache.client.get_client(write=True)
    if hasattr(cache, "_cache") and hasattr(cache._cache, "get_client"):  # django.core.cache.backends.redis
        return cache._cache.get_client(write=True)
    return None


def _probe_cache() -> str:
    # A fresh backend instance: the check sees the settings as they are now, and closes what it opened.
    cache = caches.create_connection("default")
    try:
        start = time.perf_counter()
        client = _redis_client(cache)
        version = ""
        if client is not None:
            client.ping()
            version = f"Redis {client.info('server').get('redis_version', '?')}, "
        key = f"doctor:{uuid.uuid4().hex}"
        cache.set(key, "1", timeout=30)
        if cache.get(key) != "1":
            raise RuntimeError("a value written to the cache could not be read back")
        cache.delete(key)
        return f"{version}ping, set, get and delete in {_elapsed_ms(start)}"
    finally:
        cache.close()


def check_cache(timeout: float) -> Result:
    config = settings.CACHES["default"]
    backend = config["BACKEND"]
    if "redis" not in backend.lower():
        return Result("redis", SKIP, f"cache is {backend.rsplit('.', 1)[-1]} (REDIS_URL not set): no Redis to reach")
    location = config.get("LOCATION", "")
    location = ", ".join(redact(url) for url in ([location] if isinstance(location, str) else location))
    try:
        detail = within(timeout, _probe_cache)
    except Exception as exc:
        return Result(
            "redis",
            FAIL,
            f"{location}: {_first_line(exc)}",
            "Start Redis at that address or fix REDIS_URL.",
        )
    return Result("redis", OK, f"{location}: {detail}")


# --- S3 ------------------------------------------------------------------------------------------


def _s3_remedy(exc: Exception, bucket: str) -> str:
    from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
    from botocore.exceptions import ConnectionError as S3ConnectionError

    grant = f"Grant these credentials s3:PutObject, s3:GetObject and s3:DeleteObject on arn:aws:s3:::{bucket}/*."
    if isinstance(exc, NoCredentialsError):
        return "Provide credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role."
    if isinstance(exc, S3ConnectionError | HTTPClientError | CheckTimeout):
        return "Check AWS_S3_ENDPOINT_URL (and AWS_S3_REGION_NAME) and that the store is reachable from this host."
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return f"Create bucket {bucket!r} or fix AWS_STORAGE_BUCKET_NAME (and AWS_S3_ENDPOINT_URL)."
        if code in {"AccessDenied", "403", "Forbidden"}:
            return grant
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}:
            return "Check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile or role)."
        if code in {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}:
            return "Set AWS_S3_REGION_NAME to the bucket's region."
    return f"Check AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL, AWS_S3_REGION_NAME and the credentials. {grant}"


class _S3StepFailed(Exception):
    def __init__(self, step: str, key: str, error: Exception):
        super().__init__(f"{step} {key}: {_first_line(error)}")
        self.error = error


def _probe_s3(bucket: str, timeout: float) -> str:
    import boto3
    from botocore.config import Config

    # Exactly what a least-privilege policy grants the app: put, get and delete of an object.
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=settings.AWS_S3_ENDPOINT_URL or None,
        region_name=settings.AWS_S3_REGION_NAME or None,
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"}),
    )
    key = f"{S3_PROBE_PREFIX}{socket.gethostname()}-{uuid.uuid4().hex}"
    body = f"smartmaint doctor probe {key}".encode()
    start = time.perf_counter()
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    except Exception as exc:
        raise _S3StepFailed("put", key, exc) from exc
    failure = None
    try:
        if s3.get_object(Bucket=bucket, Key=key)["Body"].read() != body:
            raise RuntimeError("the object read back differs from the one written")
    except Exception as exc:
        failure = _S3StepFailed("get", key, exc)
    try:
        s3.delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        failure = failure or _S3StepFailed("delete", key, exc)
    if failure:
        raise failure
    return f"put, get and delete of {key} in {_elapsed_ms(start)}"


def check_s3(timeout: float) -> Result:
    bucket = settings.AWS_STORAGE_BUCKET_NAME
    if not bucket:
        return Result("s3", SKIP, "AWS_STORAGE_BUCKET_NAME not set: no object storage configured")
    where = f"s3://{bucket}" + (f" at {settings.AWS_S3_ENDPOINT_URL}" if settings.AWS_S3_ENDPOINT_URL else "")
    try:
        detail = within(timeout, _probe_s3, bucket, timeout)
    except _S3StepFailed as exc:
        return Result("s3", FAIL, f"{where}: {exc}", _s3_remedy(exc.error, bucket))
    except Exception as exc:
        return Result("s3", FAIL, f"{where}: {_first_line(exc)}", _s3_remedy(exc, bucket))
    return Result("s3", OK, f"{where}: {detail}")


# --- MLflow --------------------------------------------------------------------------------------


def _mlflow_is_local() -> bool:
    return not settings.MLFLOW_TRACKING_URI.startswith(("http://", "https://", "databricks"))


def _probe_mlflow() -> str:
    from mlops import registry

    start = time.perf_counter()
    client = registry.client()
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)
    return _elapsed_ms(start)


def check_mlflow(timeout: float) -> Result:
    uri = redact(settings.MLFLOW_TRACKING_URI)
    local = _mlflow_is_local()
    try:
        took = within(timeout, _probe_mlflow)
    except Exception as exc:
        remedy = (
            "Check that the path of MLFLOW_TRACKING_URI is writable by this user."
            if local
            else "Start the MLflow server or fix MLFLOW_TRACKING_URI (and MLFLOW_REGISTRY_URI)."
        )
        return Result("mlflow", FAIL, f"{uri}: {_first_line(exc)}", remedy)
    if local:
        return Result("mlflow", OK, f"local store {uri} opens ({took})")
    return Result("mlflow", OK, f"{uri} answered in {took}")


def _sensor_types_in_use() -> list[str]:
    from sensors.choices import SensorStatus
    from sensors.models import Sensor

    # Only active sensors are scored, so only their types need a champion.
    return sorted(
        set(Sensor.objects.filter(status=SensorStatus.ACTIVE).values_list("sensor_type", flat=True).distinct())
    )


def _champions(sensor_types: list[str]) -> tuple[dict[str, str], list[str]]:
    from mlflow.exceptions import MlflowException

    from mlops import registry

    client = registry.client()
    found, missing = {}, []
    for sensor_type in sensor_types:
        try:
            version = client.get_model_version_by_alias(registry.model_name(sensor_type), registry.CHAMPION)
        except MlflowException as exc:
            # No registered model, or no champion alias on it.
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                missing.append(sensor_type)
                continue
            raise
        found[sensor_type] = str(version.version)
    return found, missing


def check_champions(connection: BaseDatabaseWrapper, timeout: float) -> Result:
    try:
        with _bounded(connection, timeout):
            sensor_types = _sensor_types_in_use()
    except DatabaseError as exc:
        # No sensors table yet: the migration lines already say what to do.
        return Result("champion_models", SKIP, f"not checked: no sensor types ({_first_line(exc)})")
    if not sensor_types:
        return Result("champion_models", SKIP, "no active sensors: no sensor type needs a model")
    try:
        found, missing = within(timeout, _champions, sensor_types)
    except Exception as exc:
        return Result(
            "champion_models",
            FAIL,
            f"{redact(settings.MLFLOW_TRACKING_URI)}: {_first_line(exc)}",
            "Fix MLflow first (see the mlflow line).",
        )
    if missing:
        return Result(
            "champion_models",
            FAIL,
            f"no champion for {', '.join(missing)} ({len(missing)} of {len(sensor_types)} types with active sensors)",
            f"Run manage.py train_models --types {','.join(missing)} (a first version becomes champion).",
        )
    versions = ", ".join(f"{sensor_type} v{version}" for sensor_type, version in found.items())
    return Result("champion_models", OK, f"champion for every type with active sensors: {versions}")


# --- SMTP ----------------------------------------------------------------------------------------


def _resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def check_smtp(timeout: float) -> Result:
    host, port = settings.EMAIL_HOST, settings.EMAIL_PORT
    if not host:
        return Result("smtp", SKIP, "EMAIL_SMTP_HOST not set: mail is written to the console")
    security = "SSL" if settings.EMAIL_USE_SSL else "STARTTLS" if settings.EMAIL_USE_TLS else "no TLS"
    try:
        addresses = within(timeout, _resolve, host, port)
    except Exception as exc:
        return Result(
            "smtp",
            FAIL,
            f"{host} does not resolve: {_first_line(exc)}",
            "Fix EMAIL_SMTP_HOST, or this host's DNS resolver.",
        )
    return Result("smtp", OK, f"{host} resolves to {_listed(addresses)} (port {port}, {security})")


# --- All of them ---------------------------------------------------------------------------------


def _guarded(check: str, function: Callable, *args) -> list[Result]:
    """Run one check; a bug or an unforeseen error becomes its FAIL line instead of ending the report."""
    try:
        outcome = function(*args)
    except Exception as exc:
        return [Result(check, FAIL, _first_line(exc), UNEXPECTED)]
    return list(outcome) if isinstance(outcome, list | tuple) else [outcome]


def run_checks(*, timeout: float = DEFAULT_TIMEOUT, using: str = "default") -> list[Result]:
    connection = connections[using]
    results = _guarded("database", check_database, connection, timeout)
    database_up = results[0].status == OK
    skipped = "not checked: the database cannot be reached"

    if database_up:
        try:
            extension, in_use = check_timescaledb(connection, timeout)
        except Exception as exc:
            extension, in_use = Result("timescaledb", FAIL, _first_line(exc), UNEXPECTED), False
        results.append(extension)
        if in_use:
            results += _guarded("hypertable", check_timescale_objects, connection, timeout)
        elif extension.status != FAIL:
            results.append(Result("hypertable", SKIP, "TimescaleDB not in use: plain tables, no policies"))
        results += _guarded("migrations", check_migrations, connection, timeout)
        results += _guarded("reading_times", check_reading_times, connection, timeout)
    else:
        results += [
            Result(name, SKIP, skipped)
            for name in (
                "timescaledb",
                "migrations_table",
                "unapplied_migrations",
                "ghost_migrations",
                "legacy_migrations_table",
                "reading_times",
            )
        ]

    results += _guarded("redis", check_cache, timeout)
    results += _guarded("s3", check_s3, timeout)
    mlflow = _guarded("mlflow", check_mlflow, timeout)
    results += mlflow

    if not database_up:
        results.append(Result("champion_models", SKIP, skipped))
    elif mlflow[0].status != OK:
        results.append(Result("champion_models", SKIP, "not checked: MLflow cannot be reached"))
    else:
        results += _guarded("champion_models", check_champions, connection, timeout)

    results += _guarded("smtp", check_smtp, timeout)
    return results
