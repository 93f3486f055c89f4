"""The stack's settings: model.py (the typed model), reader.py (reading and validating one config
value), load.py (reading the stack's keys in order, one area per module: images.py, stores.py,
exposure.py, aws.py, contacts.py). Importers use the names below."""

from components.settings.load import SECRET_KEYS, load_from_pulumi, load_settings, load_stack_settings
from components.settings.model import SERVICES, AlertContacts, AwsSettings, Secret, Settings, SmtpSettings
from components.settings.reader import VERSION_TAG, ProblemsError, SettingsError

__all__ = [
    "SECRET_KEYS",
    "SERVICES",
    "VERSION_TAG",
    "AlertContacts",
    "AwsSettings",
    "ProblemsError",
    "Secret",
    "Settings",
    "SettingsError",
    "SmtpSettings",
    "load_from_pulumi",
    "load_settings",
    "load_stack_settings",
]
