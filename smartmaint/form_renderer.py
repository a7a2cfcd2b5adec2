"""The form renderer (FORM_RENDERER): Django's, with its commonest widget templates (inputs and selects) written
directly in Python, in exactly the markup those templates give, and empty error lists skipped.

Django renders every widget through a template, and every option of a select through one more: the asset page's
sensors table (ten sensors, two selects and five inputs each) spent a third of the page's time there. Any other
template, and these ones where an app overrides them, go through Django's renderer as before.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import django.forms
from django.forms.renderers import DjangoTemplates
from django.template.base import render_value_in_context
from django.template.context import Context
from django.utils.safestring import SafeData, mark_safe

_WIDGETS = "django/forms/widgets/"
_INPUTS = frozenset(
    f"{_WIDGETS}{name}.html"
    for name in (
        "input",
        "text",
        "number",
        "hidden",
        "email",
        "url",
        "tel",
        "search",
        "password",
        "date",
        "datetime",
        "time",
        "color",
        "checkbox",
    )
)
_SELECT = f"{_WIDGETS}select.html"
_OPTION = f"{_WIDGETS}select_option.html"
_ATTRS = f"{_WIDGETS}attrs.html"
# Every field's error list is rendered, empty or not: empty, these templates write nothing.
_ERRORS = frozenset({"django/forms/errors/list/ul.html", "django/forms/errors/list/default.html"})
# What a template's {{ value }} does: localtime, localize, str, escape unless safe.
_AUTOESCAPE = Context(autoescape=True)


def _text(value) -> str:
    """``{{ value }}``"""
    return render_value_in_context(value, _AUTOESCAPE)


def _string(value) -> str:
    """``{{ value|stringformat:'s' }}`` (a safe value stays unescaped: the filter is is_safe)."""
    text = "%s" % (str(value) if isinstance(value, tuple) else value)
    return _text(mark_safe(text) if isinstance(value, SafeData) else text)  # noqa: S308


def _attrs(attrs: dict) -> str:
    """django/forms/widgets/attrs.html"""
    out = []
    for name, value in attrs.items():
        if value is False:
            continue
        out.append(f" {_text(name)}" if value is True else f' {_text(name)}="{_string(value)}"')
    return "".join(out)


def _input(widget: dict) -> str:
    """django/forms/widgets/input.html (and the templates that only include it)"""
    value = f' value="{_string(widget["value"])}"' if widget["value"] is not None else ""
    return f'<input type="{_text(widget["type"])}" name="{_text(widget["name"])}"{value}{_attrs(widget["attrs"])}>'


def _select(widget: dict) -> str | None:
    """django/forms/widgets/select.html with its options; None for an option of another template."""
    out = [f'<select name="{_text(widget["name"])}"{_attrs(widget["attrs"])}>']
    for group_name, group_choices, _ in widget["optgroups"]:
        if group_name:
            out.append(f'\n  <optgroup label="{_text(group_name)}">')
        for option in group_choices:
            if option["template_name"] != _OPTION:
                return None
            out.append(
                f'\n  <option value="{_string(option["value"])}"{_attrs(option["attrs"])}>'
                f"{_text(option['label'])}</option>\n"
            )
        if group_name:
            out.append("\n  </optgroup>")
    out.append("\n</select>")
    return "".join(out)


class DirectRenderer(DjangoTemplates):
    """Django's template renderer, writing inputs and selects itself (see the module's docstring)."""

    @cached_property
    def _direct(self) -> frozenset[str]:
        # Only where Django's own template would be used: an app that overrides one keeps its markup.
        own = Path(django.forms.__file__).parent / "templates"
        names = [*_INPUTS, _SELECT, _OPTION, _ATTRS, *_ERRORS]
        overridden = {name for name in names if Path(self.get_template(name).origin.name) != own / name}
        if {_OPTION, _ATTRS} & overridden:
            overridden |= {*_INPUTS, _SELECT}
        if _ERRORS & overridden:
            overridden |= _ERRORS
        return frozenset(name for name in names if name not in overridden and name not in (_OPTION, _ATTRS))

    def render(self, template_name, context, request=None):
        if template_name in self._direct:
            if template_name in _ERRORS:
                if not context.get("errors"):
                    return ""
            elif "widget" in context:
                widget = context["widget"]
                html = _select(widget) if template_name == _SELECT else _input(widget)
                if html is not None:
                    return html.strip()
        return super().render(template_name, context, request=request)
