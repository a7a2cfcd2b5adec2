"""The work order page's forms (maintenance.admin): they parse what people type; maintenance.services decides."""

from django import forms
from django.conf import settings

from maintenance.choices import FindingOutcome, WorkOrderStatus
from readings.choices import FaultKind

FAULT_KINDS = [(kind.value, kind.label) for kind in FaultKind if kind != FaultKind.NORMAL]


class CommentForm(forms.Form):
    text = forms.CharField(label="Comment", max_length=10_000, widget=forms.Textarea(attrs={"rows": 3}))


class AttachmentForm(forms.Form):
    file = forms.FileField(
        label="Photo or document",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(settings.ATTACHMENT_CONTENT_TYPES)}),
    )


class StatusForm(forms.Form):
    """One button per allowed status; the service refuses any other."""

    status = forms.ChoiceField(choices=WorkOrderStatus.choices)
    note = forms.CharField(required=False, max_length=1_000)


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(queryset=None, required=False, empty_label="Nobody (unassign)")

    def __init__(self, *args, candidates, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = candidates
        self.fields["assignee"].label_from_instance = lambda user: user.get_full_name() or user.get_username()


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


class FindingForm(forms.Form):
    outcome = forms.ChoiceField(choices=FindingOutcome.choices, widget=forms.RadioSelect)
    fault_kind = forms.ChoiceField(
        label="Fault kind",
        choices=[("", "---------"), *FAULT_KINDS],
        required=False,
        help_text="For a confirmed fault.",
    )
    fault_start = forms.DateTimeField(
        label="Fault started",
        required=False,
        widget=DateTimeLocalInput(),
        help_text=f"For a confirmed fault ({settings.TIME_ZONE}).",
    )
    cause = forms.CharField(required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 2}))
    action = forms.CharField(
        label="Action taken", required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 2})
    )
    time_spent_minutes = forms.IntegerField(
        label="Time spent (minutes)", min_value=0, max_value=1_000_000, initial=0, required=False
    )
    parts_used = forms.CharField(
        required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 2}), help_text="One per line."
    )

    def clean(self):
        data = super().clean()
        if data.get("outcome") == FindingOutcome.CONFIRMED_FAULT:
            for name in ("fault_kind", "fault_start"):
                if not data.get(name) and name not in self.errors:
                    self.add_error(name, "Required for a confirmed fault.")
        return data
