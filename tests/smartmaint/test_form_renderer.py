"""smartmaint.form_renderer.DirectRenderer writes inputs and selects exactly as Django's widget templates do."""

from datetime import UTC, datetime

import pytest
from django import forms
from django.forms.renderers import DjangoTemplates
from django.utils.safestring import mark_safe

from smartmaint.form_renderer import DirectRenderer


class EveryWidget(forms.Form):
    text = forms.CharField(max_length=20, widget=forms.TextInput(attrs={"class": "vTextField", "placeholder": 'a "b"'}))
    number = forms.FloatField(required=False)
    count = forms.IntegerField(min_value=0, disabled=True)
    hidden = forms.CharField(widget=forms.HiddenInput, required=False)
    email = forms.EmailField(required=False)
    url = forms.URLField(required=False)
    password = forms.CharField(widget=forms.PasswordInput(render_value=True), required=False)
    flag = forms.BooleanField(required=False)
    moment = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    day = forms.DateField(required=False, widget=forms.DateInput)
    choice = forms.ChoiceField(choices=[("", "---"), ("a", "A & <b>"), (3, 3), ("c", mark_safe("<i>c</i>"))])
    grouped = forms.ChoiceField(
        required=False, choices=[("", "none"), ("Pumps", [("p1", "Pump 1"), ("p2", "Pump 2")]), ("x", "other")]
    )
    many = forms.MultipleChoiceField(required=False, choices=[("a", "A"), ("b", "B"), ("c", "C")])
    notes = forms.CharField(required=False, widget=forms.Textarea)


DATA = {
    "text": "<script>&'\"",
    "number": "1.5",
    "count": "7",
    "hidden": "h&",
    "email": "a@b.c",
    "password": "s<e>cret",
    "flag": "on",
    "moment": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    "choice": "a",
    "grouped": "p2",
    "many": ["a", "c"],
    "notes": "x < y",
}


@pytest.mark.parametrize("data", [None, DATA, {"number": "not a number", "choice": "zzz"}])
def test_every_widget_is_written_as_django_writes_it(data):
    direct = EveryWidget(data, renderer=DirectRenderer()).as_div()
    django = EveryWidget(data, renderer=DjangoTemplates()).as_div()
    assert direct == django
    assert "<input" in direct and "<option" in direct
