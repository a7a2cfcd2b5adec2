"""smartmaint's own doctor checks: the database, the migrations table, the cache, S3, SMTP, and the background side
(Celery workers, beat, the periodic jobs).

Registered in ``SmartmaintConfig.ready()``; see ``smartmaint.doctor`` for the registry.
"""

from __future__ import annotations

import math
import socket
import time
import uuid

from django.apps import apps
from django.conf import settings
from django.core.cache import caches
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from smartmaint import preflight
from smartmaint.doctor import (
    FAIL,
    OK,
    SKIP,
    CheckTimeout,
    Result,
    bounded,
    elapsed_ms,
    fetch,
    first_line,
    listed,
    redact,
    within,
)
from smartmaint.migrations_table import LEGACY_TABLE, Adoption, ghost_migrations, plan_adoption, project_apps

# Probe objects are written under this prefix and deleted at once.
S3_PROBE_PREFIX = "smartmaint-doctor/"


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
            connect_note = f", connected in {elapsed_ms(start)}"
        with bounded(connection, timeout):
            start = time.perf_counter()
            fetch(connection, "SELECT 1")
            round_trip = elapsed_ms(start)
            if connection.vendor == "postgresql":
                [(version,)] = fetch(connection, "SELECT current_setting('server_version')")
                server = f"PostgreSQL {version.split()[0]}"
            elif connection.vendor == "sqlite":
                [(version,)] = fetch(connection, "SELECT sqlite_version()")
                server = f"SQLite {version}"
            else:
                server = connection.display_name
    except Exception as exc:  # any failure to reach it is the finding
        return Result(
            "database",
            FAIL,
            f"{location}: {first_line(exc)}",
            "Check DATABASE_URL (host, port, name, credentials) and that the server is running and reachable.",
        )
    return Result("database", OK, f"{server} at {location}, query round trip {round_trip}{connect_note}")


# --- Migrations ----------------------------------------------------------------------------------


def _other_tables(connection: BaseDatabaseWrapper, existing: set[str]) -> list[str]:
    """Tables here that no installed app's migrations make (a system this one replaces, MLflow, others)."""
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    ours = set(preflight.tables_created_by(list(loader.disk_migrations.values()), connection))
    ours |= {MigrationRecorder.Migration._meta.db_table, LEGACY_TABLE}
    # Objects a migration makes in code (readings' continuous aggregate) carry their app's prefix.
    prefixes = tuple(f"{config.label}_" for config in apps.get_app_configs())
    return sorted(name for name in existing - ours if not name.startswith(prefixes))


def _legacy_result(connection: BaseDatabaseWrapper, adoption: Adoption | None, recorded: int) -> Result:
    """The leftover django_migrations line, in the words migrate uses for what it does with that table."""
    table = MigrationRecorder.Migration._meta.db_table
    qn = connection.ops.quote_name
    check = "legacy_migrations_table"
    another = f"{LEGACY_TABLE} exists but records none of this project's apps (another application's)"
    if adoption is not None:
        # Our table is missing or empty: this is what the next migrate does with it.
        if adoption.foreign:
            return Result(check, OK, f"{another}; migrate leaves it alone")
        if adoption.adopt:
            then = (
                f"drops {LEGACY_TABLE} (nothing else is in it)"
                if adoption.drop
                else f"leaves {LEGACY_TABLE} in place with all its records: {adoption.describe_left()}"
            )
            return Result(
                check,
                FAIL,
                f"{LEGACY_TABLE} holds {len(adoption.adopt)} record(s) of {', '.join(adoption.adopted_apps)} "
                f"not yet in {table}",
                f"Run manage.py migrate: it adopts them into {table} and {then}.",
            )
        return Result(
            check,
            FAIL,
            f"{LEGACY_TABLE} holds records that do not match this database, so migrate adopts none of them: "
            f"{adoption.describe_left()}",
            f"Run manage.py migrate: it builds the missing tables and leaves {LEGACY_TABLE} alone; "
            f"DROP TABLE {LEGACY_TABLE}; once no application uses it.",
        )
    apps_there = {app for (app,) in fetch(connection, f"SELECT DISTINCT app FROM {qn(LEGACY_TABLE)}")}
    ours = sorted(apps_there & project_apps())
    if not ours:
        # A database shared with another Django application: its history, not ours.
        return Result(check, OK, another)
    others = sorted(apps_there - {config.label for config in apps.get_app_configs()})
    if others:
        return Result(
            check,
            OK,
            f"{LEGACY_TABLE} also holds records of {', '.join(others)} (not installed here), so migrate left it "
            f"in place; this project's history is in {table}",
        )
    return Result(
        check,
        FAIL,
        f"leftover {LEGACY_TABLE} with records of {', '.join(ours)} beside {table}",
        f"Something migrated with the old table name (an older release, or MIGRATIONS_TABLE unset); "
        f"check that {table} holds the full history, then DROP TABLE {LEGACY_TABLE};",
    )


def check_migrations(connection: BaseDatabaseWrapper, timeout: float) -> list[Result]:
    table = MigrationRecorder.Migration._meta.db_table
    results = []
    with bounded(connection, timeout):
        tables = preflight.existing_tables(connection)
        has_table = table in tables
        recorded = MigrationRecorder(connection).migration_qs.count() if has_table else 0
        legacy = table != LEGACY_TABLE and LEGACY_TABLE in tables
        adoption = plan_adoption(connection)
        pending = preflight.pending_migrations(connection, adoption)
        conflicts = preflight.table_conflicts(connection, adoption)
        granted = preflight.privileges(connection)
        problem = preflight.privilege_problem(connection, len(preflight.tables_created_by(pending, connection)))
        blocked = [name for name, found in (("table_conflicts", conflicts), ("migrate_privileges", problem)) if found]
        migrate = (
            f"Fix what the {' and '.join(blocked)} {'lines say' if len(blocked) > 1 else 'line says'} first, "
            "then run manage.py migrate."
            if blocked
            else "Run manage.py migrate."
        )

        if has_table:
            results.append(Result("migrations_table", OK, f"{table} holds {recorded} record(s)"))
        else:
            adopt = f" (it adopts the records of {LEGACY_TABLE})" if adoption is not None and adoption.adopt else ""
            results.append(
                Result(
                    "migrations_table",
                    FAIL,
                    f"{table} (MIGRATIONS_TABLE) does not exist: this database was never migrated under that name",
                    f"{migrate.removesuffix('.')}{adopt}; if the history is in another table, "
                    "set MIGRATIONS_TABLE to it.",
                )
            )

        if conflicts:
            results.append(
                Result(
                    "table_conflicts",
                    FAIL,
                    preflight.conflict_report(conflicts, connection),
                    preflight.conflict_remedy(),
                )
            )
        else:
            others = _other_tables(connection, tables)
            note = f"; {len(others)} other table(s) here are not this project's, left alone: {listed(others)}"
            results.append(Result("table_conflicts", OK, "none" + (note if others else "")))

        if granted is None:
            results.append(Result("migrate_privileges", SKIP, f"{connection.display_name}: no roles to check"))
        elif problem:
            results.append(Result("migrate_privileges", FAIL, problem[0], problem[1]))
        elif granted.may_create_tables:
            results.append(
                Result("migrate_privileges", OK, f"role {granted.user} may create tables in schema {granted.schema}")
            )
        else:
            results.append(
                Result(
                    "migrate_privileges",
                    OK,
                    f"role {granted.user} may not create tables in schema {granted.schema}, "
                    "but every table migrate makes exists",
                )
            )

        names = [f"{migration.app_label}.{migration.name}" for migration in pending]
        if names and not has_table and (adoption is None or not adoption.adopt):
            results.append(Result("unapplied_migrations", FAIL, f"all {len(names)}: no migration history", migrate))
        elif names:
            results.append(Result("unapplied_migrations", FAIL, f"{len(names)}: {listed(names)}", migrate))
        else:
            results.append(Result("unapplied_migrations", OK, "none"))

        ghosts = ghost_migrations(connection)
        if ghosts:
            ghost_names = [f"{app}.{name}" for app, name in ghosts]
            prune = "; ".join(f"manage.py migrate {app} --prune" for app in sorted({app for app, _ in ghosts}))
            results.append(
                Result(
                    "ghost_migrations",
                    FAIL,
                    f"{len(ghost_names)} recorded as applied but missing from the code: {listed(ghost_names)}",
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
            results.append(_legacy_result(connection, adoption, recorded))
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
        return f"{version}ping, set, get and delete in {elapsed_ms(start)}"
    finally:
        cache.close()


def check_cache(connection: BaseDatabaseWrapper, timeout: float) -> Result:
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
            f"{location}: {first_line(exc)}",
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
        super().__init__(f"{step} {key}: {first_line(error)}")
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
    return f"put, get and delete of {key} in {elapsed_ms(start)}"


def check_s3(connection: BaseDatabaseWrapper, timeout: float) -> Result:
    bucket = settings.AWS_STORAGE_BUCKET_NAME
    if not bucket:
        return Result("s3", SKIP, "AWS_STORAGE_BUCKET_NAME not set: no object storage configured")
    where = f"s3://{bucket}" + (f" at {settings.AWS_S3_ENDPOINT_URL}" if settings.AWS_S3_ENDPOINT_URL else "")
    try:
        detail = within(timeout, _probe_s3, bucket, timeout)
    except _S3StepFailed as exc:
        return Result("s3", FAIL, f"{where}: {exc}", _s3_remedy(exc.error, bucket))
    except Exception as exc:
        return Result("s3", FAIL, f"{where}: {first_line(exc)}", _s3_remedy(exc, bucket))
    return Result("s3", OK, f"{where}: {detail}")


# --- SMTP ----------------------------------------------------------------------------------------


def _resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def check_smtp(connection: BaseDatabaseWrapper, timeout: float) -> Result:
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
            f"{host} does not resolve: {first_line(exc)}",
            "Fix EMAIL_SMTP_HOST, or this host's DNS resolver.",
        )
    return Result("smtp", OK, f"{host} resolves to {listed(addresses)} (port {port}, {security})")


# --- Background work: workers, beat and the periodic jobs ------------------------------------------------------

START_WORKER = (
    "Start a worker: `celery -A smartmaint worker --queues default,ingest,scoring,mail,training` "
    "(`make run` starts one; compose: `docker compose up -d worker`), on the broker in CELERY_BROKER_URL."
)


def _worker_queues(timeout: float) -> dict[str, list[str]]:
    from smartmaint.celery import app

    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return {worker: sorted(queue["name"] for queue in queues) for worker, queues in replies.items()}


def check_workers(connection: BaseDatabaseWrapper, timeout: float) -> Result:
    """Workers answer a broadcast within WORKER_PING_TIMEOUT, and every queue tasks are routed to has one."""
    broker = redact(settings.CELERY_BROKER_URL)
    wait = min(timeout, settings.WORKER_PING_TIMEOUT)
    try:
        # Bounded whatever the broker does (kombu retries a connection that fails).
        workers = within(wait + 5, _worker_queues, wait)
    except Exception as exc:
        remedy = "Start the broker or fix CELERY_BROKER_URL."
        return Result("workers", FAIL, f"broker {broker}: {first_line(exc)}", remedy)
    if not workers:
        return Result("workers", FAIL, f"no worker answered within {wait:g} s (broker {broker})", START_WORKER)
    served = {queue for queues in workers.values() for queue in queues}
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    detail = "; ".join(f"{worker}: {', '.join(queues)}" for worker, queues in sorted(workers.items()))
    if missing := sorted(routed - served):
        return Result(
            "workers",
            FAIL,
            f"no worker serves queue(s) {', '.join(missing)} ({detail})",
            f"Start a worker with `--queues {','.join(missing)}`, or add them to a worker's --queues "
            "(WORKER_QUEUES in compose): their tasks wait until one does.",
        )
    return Result("workers", OK, f"{len(workers)} answering: {detail}")


def check_beat(connection: BaseDatabaseWrapper, timeout: float) -> Result:
    """Beat sent a periodic job within BEAT_STALE_SECONDS (it records the jobs' last runs every 3 minutes)."""
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    from smartmaint.jobs import beat_last_sent

    if PeriodicTask._meta.db_table not in connection.introspection.table_names():
        return Result("beat", SKIP, "the periodic jobs' table is not migrated yet (manage.py migrate creates it)")
    if not PeriodicTask.objects.using(connection.alias).filter(enabled=True).exists():
        return Result(
            "beat",
            FAIL,
            "no periodic job is enabled: nothing runs by itself",
            "Run `manage.py migrate` (it creates the default jobs), or enable them in the admin (Periodic tasks).",
        )
    last = beat_last_sent()
    stale = settings.BEAT_STALE_SECONDS
    if last is None or (timezone.now() - last).total_seconds() > stale:
        since = "it has sent none yet" if last is None else f"the last at {last:%Y-%m-%d %H:%M:%S %Z}"
        return Result(
            "beat",
            FAIL,
            f"no job sent within {stale} s ({since})",
            "Start exactly one beat: `celery -A smartmaint beat` (`make run` and compose's beat service do); "
            "a beat that just started records its first runs within 3 minutes.",
        )
    return Result("beat", OK, f"last job sent {(timezone.now() - last).total_seconds():.0f} s ago")


def check_jobs(connection: BaseDatabaseWrapper, timeout: float) -> list[Result]:
    """Each enabled periodic job: its last run failed, an interval job finished no run for three periods, or the
    job's own flags (``smartmaint.jobs.jobs_flagged``, which the dashboard shows too)."""
    from django_celery_beat.models import PeriodicTask

    from smartmaint.jobs import jobs_flagged

    if settings.CELERY_RESULT_BACKEND != "django-db":
        return [Result("jobs", SKIP, "task results are not kept in the database (CELERY_RESULT_BACKEND)")]
    from django_celery_results.models import TaskResult

    tables = connection.introspection.table_names()
    if PeriodicTask._meta.db_table not in tables or TaskResult._meta.db_table not in tables:
        return [Result("jobs", SKIP, "the jobs' tables are not migrated yet (manage.py migrate creates them)")]
    checked, flags = jobs_flagged(using=connection.alias)
    if flags:
        return [
            Result(
                "jobs",
                FAIL,
                "; ".join(f"{flag.job}: {flag.problem}" for flag in flags),
                "See the error in the admin (Task results, by periodic task); a job that does not run at all needs "
                "a worker on its queue and a beat (the workers and beat lines).",
            )
        ]
    return [Result("jobs", OK, f"{checked} enabled job(s); none failing or late")]
