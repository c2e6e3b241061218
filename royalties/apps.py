from django.apps import AppConfig


class RoyaltiesConfig(AppConfig):
    """Price tiers, the double-entry royalty ledger and payout reports; see issue 6."""

    name = "royalties"
