"""The admin site of the console: the fleet dashboard as its index, and the readings browser in its URLs and
app list (Reading has a composite primary key, which a ModelAdmin cannot serve in Django 5.2)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path, reverse

from readings.admin_views import (
    dashboard_context,
    dashboard_live_view,
    plant_view,
    readings_browser_view,
    sensor_live_view,
)


class FleetAdminSite(admin.AdminSite):
    site_header = "Smart Maintenance"
    site_title = "Smart Maintenance"
    index_title = "Fleet dashboard"
    index_template = "admin/fleet_dashboard.html"
    # No "View site" link: the console is the site (/ redirects here), and there is no public front end.
    site_url = None
    # The console's lists and charts need the width more than a second copy of the app list (the index has it).
    enable_nav_sidebar = False

    def index(self, request, extra_context=None):
        return super().index(request, extra_context={**dashboard_context(request), **(extra_context or {})})

    def get_urls(self):
        return [
            path("readings/browse/", self.admin_view(self.readings_browser), name="readings_browse"),
            # The live refresh of the dashboard and the sensor page (static/js/admin/live.js).
            path("live/dashboard.json", self.admin_view(self.dashboard_live), name="dashboard_live"),
            path("live/sensors/<int:pk>.json", self.admin_view(self.sensor_live), name="sensor_live"),
            path("plant/", self.admin_view(self.plant), name="plant"),
            *super().get_urls(),
        ]

    def readings_browser(self, request):
        return readings_browser_view(request, self)

    def dashboard_live(self, request):
        return dashboard_live_view(request, self)

    def sensor_live(self, request, pk):
        return sensor_live_view(request, self, pk)

    def plant(self, request):
        return plant_view(request, self)

    def get_app_list(self, request, app_label=None):
        app_list = super().get_app_list(request, app_label)
        if app_label in (None, "sensors") and request.user.has_perm("sensors.view_sensor"):
            self._add_plant(app_list)
        if app_label not in (None, "readings") or not request.user.has_perm("readings.view_reading"):
            return app_list
        url = reverse(f"{self.name}:readings_browse", current_app=self.name)
        entry = {
            "name": "Readings browser",
            "object_name": "ReadingsBrowser",
            "admin_url": url,
            "add_url": None,
            "view_only": True,
            "perms": {"add": False, "change": False, "delete": False, "view": True},
        }
        for app in app_list:
            if app["app_label"] == "readings":
                app["models"].insert(0, entry)
                break
        else:
            app = {"name": "Readings", "app_label": "readings", "app_url": url, "has_module_perms": True}
            app_list.append({**app, "models": [entry]})
        return app_list

    def _add_plant(self, app_list):
        """The plant tree (sites, assets, sensors) first in the Sensors app, where staff look for the fleet."""
        entry = {
            "name": "Plant: sites, assets, sensors",
            "object_name": "Plant",
            "admin_url": reverse(f"{self.name}:plant", current_app=self.name),
            "add_url": None,
            "view_only": True,
            "perms": {"add": False, "change": False, "delete": False, "view": True},
        }
        for app in app_list:
            if app["app_label"] == "sensors":
                app["models"].insert(0, entry)
                return
