"""Where alert notifications go: e-mail addresses, a Slack webhook, a PagerDuty integration, and
the mail server Grafana sends e-mail through."""

from __future__ import annotations

import re
from typing import Optional

from components.settings.model import AlertContacts, SmtpSettings
from components.settings.reader import EMAIL, HTTPS_URL, ConfigReader, what_is_wrong

# PagerDuty Events API v2 integration keys are 32 characters.
_PAGERDUTY_KEY = re.compile(r"\A[A-Za-z0-9]{32}\Z")
_SMTP_HOST = re.compile(r"\A[A-Za-z0-9.-]+:[0-9]{1,5}\Z")
# Grafana writes the user into its SMTP login as given: no line break, no space at either end.
_SMTP_USER = re.compile(r"\A[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]{0,254}[^\x00-\x20\x7f])?\Z")
_PASSWORD = re.compile(r"\A[^\r\n]+\Z")


def read_alert_contacts(reader: ConfigReader) -> AlertContacts:
    return AlertContacts(
        email_addresses=reader.emails("alertEmailAddresses"),
        slack_webhook_url=reader.secret(
            "alertSlackWebhookUrl", HTTPS_URL, "an https:// webhook URL such as https://hooks.slack.com/services/..."
        ),
        pagerduty_integration_key=reader.secret(
            "alertPagerDutyIntegrationKey", _PAGERDUTY_KEY, "the 32-character integration key of a PagerDuty Events API v2 integration"
        ),
    )


def read_smtp(reader: ConfigReader) -> Optional[SmtpSettings]:
    host = reader.optional("smtpHost")
    user = reader.optional_pattern("smtpUser", _SMTP_USER, "the mail server's user name, at most 256 characters, no line break or space at an end")
    password = reader.secret("smtpPassword", _PASSWORD, "the SMTP user's password, on one line")
    from_address = reader.optional("smtpFromAddress")
    if host and not (_SMTP_HOST.fullmatch(host) and 1 <= int(host.rsplit(":", 1)[1]) <= 65535):
        wrong = what_is_wrong(host, "is not a mail server address")
        reader.problem("smtpHost", f"{host!r} {wrong}; allowed: host:port with a port from 1 to 65535, e.g. smtp.example.com:587")
    if from_address and not EMAIL.fullmatch(from_address):
        reader.problem("smtpFromAddress", f"{from_address!r} {what_is_wrong(from_address, 'is not an e-mail address')}; allowed: name@example.com")
    if not host:
        for key, value in (("smtpUser", user), ("smtpPassword", password), ("smtpFromAddress", from_address)):
            if value:
                reader.problem(key, "is set but smtpHost is not; set smtpHost (host:port) or remove it")
        return None
    if not from_address:
        reader.problem("smtpFromAddress", "is missing; Grafana needs a sender address when smtpHost is set")
    if password and not user:
        reader.problem("smtpUser", "is missing; a password is only used with a user")
    return SmtpSettings(host=host, user=user, password=password, from_address=from_address)


def refuse_email_without_smtp(reader: ConfigReader, contacts: AlertContacts, smtp: Optional[SmtpSettings]) -> None:
    if contacts.email_addresses and smtp is None:
        reader.problem("alertEmailAddresses", "e-mail needs a mail server: set smtpHost and smtpFromAddress too")
