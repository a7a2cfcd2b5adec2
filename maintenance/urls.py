from django.urls import re_path

from maintenance.views import attachment_download

urlpatterns = [
    re_path(r"^attachments/(?P<pk>[0-9]{1,18})$", attachment_download, name="attachment-download"),
]
