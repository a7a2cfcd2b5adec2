"""Attachments: stored through the default storage (S3 through moto's server when the bucket is set, local media
otherwise), limited in size and type, names sanitised, served only to people who may see the work order."""

import urllib.request

import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from maintenance.models import Attachment
from maintenance.services import work_order_assign, work_order_create
from tests.maintenance.conftest import client_for
from tests.mlflow_services import BUCKET
from tests.services import S3_ENV

pytestmark = pytest.mark.django_db
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def work_order(north_sensor, manager, technician):
    work_order = work_order_create(asset=north_sensor.asset, sensor=north_sensor, title="Leak", user=manager)
    work_order_assign(work_order=work_order, assignee=technician, user=manager)
    return work_order


@pytest.fixture
def local_media(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def s3_media(settings, s3_endpoint):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "region_name": S3_ENV["AWS_DEFAULT_REGION"],
                "access_key": S3_ENV["AWS_ACCESS_KEY_ID"],
                "secret_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
                "location": "media",
                "file_overwrite": False,
                "querystring_auth": True,
                "signature_version": "s3v4",
                "querystring_expire": settings.ATTACHMENT_URL_SECONDS,
            },
        },
    }
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_ENV["AWS_DEFAULT_REGION"],
    )


def upload(client, work_order, name="photo 1.png", content=PNG, content_type="image/png"):
    return client.post(
        f"/api/v1/work-orders/{work_order.pk}/attachments",
        {"file": SimpleUploadedFile(name, content, content_type=content_type)},
        format="multipart",
    )


def test_local_storage_upload_and_download(local_media, work_order, technician, viewer, south_technician):
    response = upload(client_for(technician), work_order, name="../../evil name.png")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "evil_name.png" and body["size"] == len(PNG) and body["content_type"] == "image/png"
    attachment = Attachment.objects.get()
    stored = local_media / attachment.file.name
    assert stored.read_bytes() == PNG and local_media in stored.resolve().parents
    # Everyone who may see the work order may download; the file is streamed.
    download = client_for(viewer).get(body["url"])
    assert download.status_code == 200 and b"".join(download.streaming_content) == PNG
    assert download["Content-Type"] == "image/png"
    assert client_for(south_technician).get(body["url"]).status_code == 404
    assert [a["name"] for a in client_for(viewer).get(f"/api/v1/work-orders/{work_order.pk}/attachments").json()] == [
        "evil_name.png"
    ]
    assert work_order.events.filter(kind="attachment").count() == 1


def test_console_download_checks_who_asks(local_media, client, work_order, technician, south_technician):
    attachment = Attachment.objects.get(pk=upload(client_for(technician), work_order).json()["id"])
    url = f"/maintenance/attachments/{attachment.pk}"
    assert client.get(url).status_code == 302  # to the sign-in page
    client.force_login(south_technician)
    assert client.get(url).status_code == 404
    client.force_login(technician)
    response = client.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == PNG


def test_limits_on_size_and_type(local_media, settings, work_order, technician, viewer):
    settings.ATTACHMENT_MAX_BYTES = 32
    client = client_for(technician)
    too_big = upload(client, work_order)
    assert too_big.status_code == 400 and "at most 32" in str(too_big.json())
    settings.ATTACHMENT_MAX_BYTES = 1024
    script = upload(client, work_order, name="x.html", content=b"<script>", content_type="text/html")
    assert script.status_code == 400 and "text/html" in str(script.json())
    assert upload(client_for(viewer), work_order).status_code == 403  # viewers read only
    assert not Attachment.objects.exists()


def test_s3_storage_serves_signed_links(s3_media, work_order, technician, viewer, south_technician):
    response = upload(client_for(technician), work_order, content_type="image/png")
    assert response.status_code == 201, response.content
    attachment = Attachment.objects.get()
    key = f"media/{attachment.file.name}"
    assert s3_media.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == len(PNG)
    redirect = client_for(viewer).get(response.json()["url"])
    assert redirect.status_code == 302
    signed = redirect["Location"]
    assert "X-Amz-Signature=" in signed and "X-Amz-Expires=300" in signed
    assert signed.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(signed) as answer:  # noqa: S310  (moto's server, checked above)
        assert answer.read() == PNG
    assert client_for(south_technician).get(response.json()["url"]).status_code == 404
