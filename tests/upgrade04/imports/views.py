"""The create view as 0.4's tutorial writes it."""

from django import forms

from liveops.views import CreateLiveOperationView

from .models import ScoreImport


class ScoreImportForm(forms.ModelForm):
    class Meta:
        model = ScoreImport
        fields = ["csv_name", "rows", "pause"]


class ImportCreateView(CreateLiveOperationView):
    model = ScoreImport
    form_class = ScoreImportForm
    template_name = "imports/import_form.html"
