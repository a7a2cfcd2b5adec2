"""Admin pages of the MLflow model registry, read live from MLflow (we keep no copy): every registered model, and
one model's versions with their runs' metrics and parameters, where staff move the aliases and archive versions."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.validators import RegexValidator
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from mlops import registry
from mlops.services import model_archive, model_set_alias

logger = logging.getLogger(__name__)

# A model's page lists its newest versions only: each costs a card and its run's metrics, and the old ones
# seldom matter (MLflow's own UI still has them all).
MAX_VERSIONS = 50
# MLflow's largest page of registered models: one call for any fleet we expect.
MODELS_PAGE = 1000
FIRST_METRICS = ("precision", "recall", "f1")
ARCHIVED = "Archived"
ARCHIVE = "archive"


def registry_permissions(user) -> tuple[bool, bool]:
    """(may view, may change) the registry pages.

    Registry objects live in MLflow, not in our tables, so they borrow the Anomaly model's permissions (the
    services log their changes on its content type too): view or change to read, change to move aliases.
    """
    can_change = user.has_perm("mlops.change_anomaly")
    return can_change or user.has_perm("mlops.view_anomaly"), can_change


@dataclass
class ModelRow:
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, str]
    latest_versions: list[tuple[str, str]]
    updated_at: datetime | None


@dataclass
class VersionRow:
    version: str
    aliases: list[str]
    stage: str
    status: str
    created_at: datetime | None
    description: str
    tags: dict[str, str]
    promotion: str  # why training made it champion or not (the version's PROMOTION_TAG), "" for older versions
    run_id: str
    run_found: bool
    run_url: str | None
    metrics: list[tuple[str, float]]
    params: list[tuple[str, str]]

    @property
    def archived(self) -> bool:
        return self.stage == ARCHIVED

    @property
    def other_aliases(self) -> list[str]:
        """The aliases staff may still point at this version."""
        return [] if self.archived else [alias for alias in registry.ALIASES if alias not in self.aliases]


def _moment(timestamp_ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC) if timestamp_ms else None


def _alias_order(alias: str) -> tuple[int, str]:
    # Ours first, in the order of registry.ALIASES (champion, challenger), then any other alias set in MLflow.
    return (registry.ALIASES.index(alias) if alias in registry.ALIASES else len(registry.ALIASES), alias)


def _model_row(model) -> ModelRow:
    return ModelRow(
        name=model.name,
        description=model.description or "",
        tags=dict(sorted(model.tags.items())),
        # Alias order follows registry.ALIASES (champion first), then any other alias set in MLflow.
        aliases={alias: str(model.aliases[alias]) for alias in sorted(model.aliases, key=_alias_order)},
        latest_versions=sorted(
            ((str(v.version), v.current_stage) for v in model.latest_versions or ()),
            key=lambda item: -int(item[0]),
        ),
        updated_at=_moment(model.last_updated_timestamp),
    )


@registry.translate_errors
def registered_models() -> list[ModelRow]:
    """Every registered model with its aliases and latest versions: one search call per 1,000 models."""
    mlflow_client = registry.client()
    rows, token = [], None
    while True:
        page = mlflow_client.search_registered_models(max_results=MODELS_PAGE, order_by=["name ASC"], page_token=token)
        rows.extend(_model_row(model) for model in page)
        token = page.token
        if not token:
            return rows


def _quoted(value: str) -> str:
    # MLflow's filter strings have no escape character: quote with whichever quote the value does not contain.
    for quote in ("'", '"'):
        if quote not in value:
            return f"{quote}{value}{quote}"
    raise Http404("No registered model has a name with both kinds of quotes.")


def _runs(mlflow_client, run_ids: set[str]) -> dict:
    """The versions' source runs: one search in our experiment, then one call per run kept elsewhere."""
    # mlflow is imported where it is used: importing it takes about a second,
    # which every command and web worker would pay through the admin.
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    runs = {}
    experiment = mlflow_client.get_experiment_by_name(settings.MLFLOW_EXPERIMENT) if run_ids else None
    if experiment is not None:
        listed = ", ".join(f"'{run_id}'" for run_id in sorted(run_ids))
        found = mlflow_client.search_runs(
            [experiment.experiment_id],
            filter_string=f"attributes.run_id IN ({listed})",
            run_view_type=ViewType.ALL,
            max_results=len(run_ids),
        )
        runs.update((run.info.run_id, run) for run in found)
    for run_id in run_ids - runs.keys():
        try:
            runs[run_id] = mlflow_client.get_run(run_id)
        except MlflowException as exc:
            # A deleted run leaves its versions behind: show them without metrics.
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
    return runs


def _ordered_metrics(metrics: dict[str, float]) -> list[tuple[str, float]]:
    first = [(key, metrics[key]) for key in FIRST_METRICS if key in metrics]
    return first + sorted((key, value) for key, value in metrics.items() if key not in FIRST_METRICS)


@registry.translate_errors
def registered_model(name: str) -> tuple[ModelRow, list[VersionRow], bool]:
    """A model, its newest versions (at most MAX_VERSIONS) with their runs, and whether older versions exist."""
    mlflow_client = registry.client()
    model = mlflow_client.get_registered_model(name)
    versions = mlflow_client.search_model_versions(
        f"name = {_quoted(name)}", max_results=MAX_VERSIONS, order_by=["version_number DESC"]
    )
    runs = _runs(mlflow_client, {version.run_id for version in versions if version.run_id})
    aliases_of = defaultdict(list)
    row = _model_row(model)
    for alias, version in row.aliases.items():
        aliases_of[version].append(alias)
    rows = []
    for version in versions:
        run = runs.get(version.run_id)
        rows.append(
            VersionRow(
                version=str(version.version),
                aliases=aliases_of[str(version.version)],
                stage=version.current_stage or "None",
                status=version.status or "",
                created_at=_moment(version.creation_timestamp),
                description=version.description or "",
                tags={key: value for key, value in sorted(version.tags.items()) if key != registry.PROMOTION_TAG},
                promotion=version.tags.get(registry.PROMOTION_TAG, ""),
                run_id=version.run_id or "",
                run_found=run is not None,
                run_url=registry.run_url(run.info.run_id, run.info.experiment_id) if run else None,
                metrics=_ordered_metrics(run.data.metrics) if run else [],
                params=sorted(run.data.params.items()) if run else [],
            )
        )
    return row, rows, bool(versions.token)


def _redact(text: str) -> str:
    """``text`` without the user name and password of the MLflow URIs (MLflow's errors repeat the URL)."""
    for uri in (settings.MLFLOW_REGISTRY_URI, settings.MLFLOW_TRACKING_URI):
        netloc = urlsplit(uri).netloc
        if "@" in netloc:
            text = text.replace(netloc.rsplit("@", 1)[0] + "@", "")
    return text


def mlflow_location() -> str:
    """The registry's URI as shown to staff."""
    return _redact(settings.MLFLOW_REGISTRY_URI or settings.MLFLOW_TRACKING_URI)


def unreachable_message(exc: Exception) -> str:
    from mlflow.exceptions import MlflowException

    cause = exc.__cause__ if isinstance(exc, registry.MLflowUnavailable) and exc.__cause__ else exc
    if isinstance(cause, MlflowException):
        reason = cause.message
    elif cause is exc and isinstance(exc, registry.MLflowUnavailable):
        reason = str(exc)
    else:
        reason = f"{type(cause).__name__}: {cause}"
    return f"MLflow at {mlflow_location()} cannot be reached: {_redact(reason)}"


def _not_found(exc: Exception) -> bool:
    from mlflow.exceptions import MlflowException

    cause = exc.__cause__ if isinstance(exc, registry.MLflowUnavailable) else exc
    return isinstance(cause, MlflowException) and cause.error_code == "RESOURCE_DOES_NOT_EXIST"


def _read(function, *args):
    """(result, None), or (None, banner text) when MLflow fails in any way: the pages stay up without it."""
    try:
        return function(*args), None
    except Http404:
        raise
    except Exception as exc:
        if args and _not_found(exc):
            raise Http404(f"MLflow has no registered model named {args[0]!r}.") from exc
        # Anything else (network, MLflow errors, a client library bug) becomes the banner, logged for operators
        # (with the traceback when it is not MLflow's own error).
        message = unreachable_message(exc)
        logger.warning("%s", message, exc_info=not isinstance(exc, registry.MLflowUnavailable))
        return None, message


def _context(request, site, **extra) -> dict:
    can_view, can_change = registry_permissions(request.user)
    if not can_view:
        raise PermissionDenied
    return {
        **site.each_context(request),
        "can_change": can_change,
        "mlflow_location": mlflow_location(),
        "mlflow_ui_url": settings.MLFLOW_UI_URL,
        "aliases": registry.ALIASES,
        **extra,
    }


# How many registry changes the pages show (newest first): the full log stays in the admin's log entries.
CHANGES_SHOWN = 30


def registry_changes(*, name: str | None = None, limit: int = CHANGES_SHOWN) -> list:
    """Who moved which alias or archived which version, when and why (the services' admin log entries), newest
    first; of one model when ``name`` is given. Every staff member who may read the registry reads these."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    from mlops.models import Anomaly

    entries = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Anomaly), object_id="")
    if name is not None:
        entries = entries.filter(
            Q(change_message__startswith=f"Archived {name} version ")
            | Q(change_message__regex=rf"^Set alias \w+ of {re.escape(name)} to version ")
        )
    return list(entries.select_related("user").order_by("-action_time")[:limit])


def registry_list_view(request, site):
    context = _context(request, site, title="Registered models")
    models, error = _read(registered_models)
    context.update(models=models or [], error=error, changes=registry_changes())
    return TemplateResponse(request, "admin/mlops/registry_list.html", context)


class RegistryActionForm(forms.Form):
    action = forms.ChoiceField(choices=[*((alias, alias) for alias in registry.ALIASES), (ARCHIVE, ARCHIVE)])
    version = forms.CharField(max_length=32, validators=[RegexValidator(r"^\d+$", "A version is a number.")])
    reason = forms.CharField(max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
    confirmed = forms.BooleanField(required=False)


def registry_model_view(request, site, name: str):
    context = _context(request, site, title=name)
    if request.method == "POST":
        if not context["can_change"]:
            raise PermissionDenied
        return _apply(request, site, name)
    found, error = _read(registered_model, name)
    model, versions, more = found or (None, [], False)
    context.update(
        model=model,
        versions=versions,
        more_versions=more,
        max_versions=MAX_VERSIONS,
        error=error,
        changes=registry_changes(name=name),
    )
    return TemplateResponse(request, "admin/mlops/registry_model.html", context)


def _consequence(name: str, version: str, action: str) -> tuple[str, bool]:
    """What the change will do, in words, and whether it stops or changes what scoring serves."""
    found, _ = _read(registered_model, name)
    model = found[0] if found else None
    aliases = model.aliases if model else {}
    if action == ARCHIVE:
        held = [alias for alias, held_version in aliases.items() if held_version == version]
        if registry.CHAMPION in held:
            return (
                f"Version {version} is the champion of {name}: archiving it removes the champion, and scoring of "
                "its type stops until another version is made champion.",
                True,
            )
        if held:
            return f"Version {version} loses its alias {', '.join(held)} and is archived.", False
        return f"Version {version} of {name} is archived; no alias points at it.", False
    current = aliases.get(action)
    move = f"from version {current} to version {version}" if current else f"to version {version}"
    if action == registry.CHAMPION:
        return f"The champion of {name} moves {move}: scoring serves version {version} from its next run.", True
    return f"The {action} of {name} moves {move}.", False


def _confirm(request, site, name: str, form, *, error: str = ""):
    """The confirmation page of a registry change: what it does, and a reason to give (kept in MLflow and in the
    registry's change log)."""
    action, version = form.cleaned_data["action"], form.cleaned_data["version"]
    consequence, serious = _consequence(name, version, action)
    verb = f"Archive version {version}" if action == ARCHIVE else f"Make version {version} {action}"
    context = _context(request, site, title=f"{verb} of {name}?")
    context.update(
        name=name,
        action=action,
        version=version,
        verb=verb,
        consequence=consequence,
        serious=serious,
        reason=form.cleaned_data.get("reason") or "",
        confirm_error=error,
    )
    return TemplateResponse(request, "admin/mlops/registry_confirm.html", context)


def _apply(request, site, name: str):
    """Move an alias or archive a version: first a confirmation page asking for a reason, then, confirmed, the
    change through the services (which log it with the reason and tag the version in MLflow), then back to the
    page (POST, redirect, GET: a reload does not repeat it)."""
    form = RegistryActionForm(request.POST)
    back = HttpResponseRedirect(reverse("admin:mlops_registry_model", args=[name], current_app=site.name))
    if not form.is_valid():
        messages.error(request, " ".join(error for errors in form.errors.values() for error in errors))
        return back
    action, version = form.cleaned_data["action"], form.cleaned_data["version"]
    reason = form.cleaned_data["reason"].strip()
    if not form.cleaned_data["confirmed"]:
        return _confirm(request, site, name, form)
    if not reason:
        return _confirm(request, site, name, form, error="Give a reason: it is kept with the version in MLflow.")
    try:
        if action == ARCHIVE:
            model_archive(name=name, version=version, user=request.user, reason=reason)
            messages.success(request, f"Version {version} of {name} is archived.")
        else:
            model_set_alias(name=name, version=version, alias=action, user=request.user, reason=reason)
            messages.success(request, f"The {action} of {name} is now version {version}.")
    except (registry.MLflowUnavailable, ValueError) as exc:
        messages.error(request, f"Nothing changed: {_redact(str(exc))}")
    return back
