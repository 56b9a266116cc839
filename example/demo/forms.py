"""The forms that start operations; each field is a field of the operation's model."""

from __future__ import annotations

from django import forms

from demo.models import FailingJob, LongImport, QuickCount, SalesReport


class QuickCountForm(forms.ModelForm):
    class Meta:
        model = QuickCount
        fields = ["below"]


class LongImportForm(forms.ModelForm):
    class Meta:
        model = LongImport
        fields = ["seconds", "stream"]
        widgets = {"seconds": forms.NumberInput(attrs={"step": "any"})}


class FailingJobForm(forms.ModelForm):
    class Meta:
        model = FailingJob
        fields: list[str] = []


class SalesReportForm(forms.ModelForm):
    class Meta:
        model = SalesReport
        fields = ["seconds", "recipients"]
        widgets = {"seconds": forms.NumberInput(attrs={"step": "any"})}


class BatchForm(forms.Form):
    seconds = forms.FloatField(
        label="Duration of the longest (seconds)",
        min_value=1,
        max_value=300,
        initial=10,
        widget=forms.NumberInput(attrs={"step": "any"}),
    )
