from django.apps import AppConfig


class DisputesConfig(AppConfig):
    """Disputes of attribution and ownership, with the amounts in question held in the ledger
    until staff resolve them (or their deadline passes)."""

    name = "disputes"
