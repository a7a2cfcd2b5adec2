"""Links every page of the site has: no "View site" to a 404, a favicon (also at /favicon.ico), and / leads to
the console."""

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_admin_pages_have_no_view_site_link_and_link_the_favicon(staff_client, client):
    for response in (staff_client.get("/admin/"), client.get("/admin/login/")):
        assert response.status_code == 200
        page = response.content.decode()
        assert "View site" not in page
        assert '<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">' in page
        # Same origin: the Content-Security-Policy allows images from 'self' only (and data:).
        assert "img-src 'self'" in response["Content-Security-Policy"]


def test_favicon_ico_redirects_to_the_icon_which_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/favicon.svg"
    assert finders.find("favicon.svg")
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(icon.streaming_content)


def test_the_bare_address_leads_to_the_console(client):
    response = client.get("/", follow=True)
    assert response.redirect_chain[0] == ("/admin/", 302)
    assert response.status_code == 200
    assert response.request["PATH_INFO"] == "/admin/login/"
