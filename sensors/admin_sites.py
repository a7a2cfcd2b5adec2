"""Site access in the admin console: one mixin that limits a ModelAdmin's rows to the sites a person is given
(``sensors.selectors.user_sites``), and a site filter that offers only those sites. Lists, change pages,
actions, exports and autocompletes all read ``get_queryset``, so limiting it limits them all."""

from __future__ import annotations

from django.contrib import admin
from django.http import Http404

from sensors.selectors import user_sites, within_user_sites


class NotFoundAdmin:
    """An object's page answers 404 when the object is not in the admin's queryset (Django redirects to the index
    with "doesn't exist"): the answer the console's chart and export endpoints give, for an object that does not
    exist and for one of a site the person is not given alike, so that it says nothing about what exists."""

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404(f"No {opts.verbose_name} with this ID.")


class SiteLimitedAdmin(NotFoundAdmin):
    """Rows of the sites ``request.user`` may see; ``site_lookup`` is the lookup of a row's site name.

    An object of another site is not found (404, as one that does not exist); forms offer only the assets and
    sensors of the person's sites."""

    site_lookup = "site"

    def get_queryset(self, request):
        return self.limit_to_sites(request, super().get_queryset(request))

    def limit_to_sites(self, request, queryset):
        """``queryset`` limited to the person's sites: for a ``get_queryset`` that does not call ModelAdmin's."""
        return within_user_sites(queryset, request.user, site=self.site_lookup)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # A form offers (and accepts) only the assets and sensors of the person's sites.
        from sensors.models import Asset, Sensor

        lookups = {Asset: "site", Sensor: "asset__site"}
        if db_field.related_model in lookups and "queryset" not in kwargs:
            queryset = db_field.related_model._default_manager.all()
            kwargs["queryset"] = within_user_sites(queryset, request.user, site=lookups[db_field.related_model])
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class SiteListFilter(admin.AllValuesFieldListFilter):
    """The site filter offering only the sites the person may see: Django's own reads the sites of every row of
    the related table (every asset's site for sensors and alerts), whoever asks."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        sites = user_sites(request.user)
        if sites is not None:
            allowed = set(sites)
            self.lookup_choices = [site for site in self.lookup_choices if site in allowed]
