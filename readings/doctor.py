"""The doctor's checks of what readings owns: the TimescaleDB extension, the hypertable and its policies, reading times.

Registered in ``ReadingsConfig.ready()``; see ``smartmaint.doctor`` for the registry.
"""

from __future__ import annotations

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper

from readings.models import Reading
from readings.services import readings_before
from readings.timescale import HOURLY_VIEW, READINGS_TABLE
from smartmaint.doctor import FAIL, OK, SKIP, Result, bounded, fetch, guarded, listed
from smartmaint.preflight import extension_problem

# --- TimescaleDB ---------------------------------------------------------------------------------


def check_timescaledb(connection: BaseDatabaseWrapper, timeout: float) -> list[Result]:
    """The extension line, then the hypertable and its policies where TimescaleDB is in use."""
    extension, in_use = check_extension(connection, timeout)
    if in_use:
        return [extension, *guarded("hypertable", check_timescale_objects, connection, timeout)]
    if extension.status != FAIL:
        return [extension, Result("hypertable", SKIP, "TimescaleDB not in use: plain tables, no policies")]
    return [extension]


def check_extension(connection: BaseDatabaseWrapper, timeout: float) -> tuple[Result, bool]:
    """The extension line, and whether TimescaleDB is in use here (so its objects should exist)."""
    mode = settings.TIMESCALEDB
    if connection.vendor != "postgresql":
        return Result("timescaledb", SKIP, f"{connection.display_name}: TimescaleDB applies to PostgreSQL only"), False
    with bounded(connection, timeout):
        installed = fetch(connection, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        available = fetch(connection, "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
    if mode == "off":
        note = " (installed but not used)" if installed else ""
        return Result("timescaledb", SKIP, f"TIMESCALEDB=off: plain PostgreSQL tables{note}"), False
    if installed:
        return Result("timescaledb", OK, f"timescaledb {installed[0][0]} installed (TIMESCALEDB={mode})"), True
    on_server = f"; version {available[0][0]} is available on the server" if available else ""
    # migrate creates the extension itself, so the role must be allowed to (see smartmaint.preflight).
    problem = extension_problem(connection, "timescaledb") if available else None
    if problem:
        return Result(
            "timescaledb",
            FAIL,
            f"not installed in this database (TIMESCALEDB={mode}){on_server}, but {problem[0]}",
            f"{problem[1]}, then manage.py migrate; or set TIMESCALEDB=off to use plain PostgreSQL tables.",
        ), False
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
    [(same,)] = fetch(connection, "SELECT %s::interval = %s::interval", [configured, wanted])
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
    migrate = "Run manage.py migrate: it re-applies the TimescaleDB policies from the settings."
    with bounded(connection, timeout):
        if READINGS_TABLE not in connection.introspection.table_names():
            return [Result("hypertable", FAIL, f"table {READINGS_TABLE} does not exist", "Run manage.py migrate.")]
        hypertable = fetch(
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
            for job_id, proc, scheduled, compress_after, drop_after in fetch(
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

        aggregate = fetch(
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


# --- Stored data ---------------------------------------------------------------------------------


def check_reading_times(connection: BaseDatabaseWrapper, timeout: float) -> Result:
    """No stored reading older than READINGS_MIN_TIME (clock faults stored before ingest refused them)."""
    bound = settings.READINGS_MIN_TIME.isoformat()
    with bounded(connection, timeout):
        if Reading._meta.db_table not in connection.introspection.table_names():
            return Result("reading_times", SKIP, "no readings table yet (run manage.py migrate)")
        stray = readings_before(before=settings.READINGS_MIN_TIME, using=connection.alias)
    if not stray.count:
        return Result("reading_times", OK, f"no reading older than READINGS_MIN_TIME ({bound})")
    return Result(
        "reading_times",
        FAIL,
        f"{stray.count} reading(s) older than READINGS_MIN_TIME ({bound}) on {listed(stray.sensor_ids)}: "
        "clock faults, hidden from the API, charts and training",
        "See them with manage.py delete_readings; delete them with manage.py delete_readings --yes.",
    )
