"""Django's admin app with the console's site (``readings.admin_site.FleetAdminSite``) as ``admin.site``.

Listed in INSTALLED_APPS instead of ``django.contrib.admin``. Kept apart from the site's module because app
configs are imported before models are ready.
"""

from django.contrib.admin.apps import AdminConfig


class FleetAdminConfig(AdminConfig):
    default_site = "readings.admin_site.FleetAdminSite"
