"""Forms of the demo pages."""

from django import forms


class KeyValueForm(forms.Form):
    """One session key to set; keys starting with ``_`` belong to Django and are refused."""

    key = forms.CharField(max_length=50)
    value = forms.CharField(max_length=1000, required=False)

    def clean_key(self) -> str:
        key: str = self.cleaned_data["key"].strip()
        if key.startswith("_"):
            raise forms.ValidationError("Keys starting with an underscore are Django's own.")
        return key
