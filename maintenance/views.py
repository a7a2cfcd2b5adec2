"""Serving attachments to the people who may see their work order: a signed S3 link, or the local file streamed."""

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponseRedirect

from maintenance.models import Attachment
from maintenance.selectors import work_orders_visible


def attachment_response(attachment: Attachment):
    """The file of ``attachment``: a redirect to a short-lived signed URL where the storage makes them (S3), else
    the file streamed from local storage. Callers check access first."""
    storage = attachment.file.storage
    try:
        storage.path(attachment.file.name)
    except NotImplementedError:  # remote storage: S3 signs its URLs (ATTACHMENT_URL_SECONDS)
        return HttpResponseRedirect(storage.url(attachment.file.name))
    try:
        handle = storage.open(attachment.file.name, "rb")
    except FileNotFoundError:
        raise Http404("The file is missing from storage.") from None
    response = FileResponse(handle, content_type=attachment.content_type, as_attachment=True, filename=attachment.name)
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
def attachment_download(request, pk: int):
    """For the admin pages: the attachment, if its work order is one the signed-in person may see."""
    attachment = Attachment.objects.filter(pk=pk, work_order__in=work_orders_visible(user=request.user)).first()
    if attachment is None:
        raise Http404("No such attachment.")
    return attachment_response(attachment)
