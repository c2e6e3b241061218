"""Checks every royalties write shares: currencies, staff actors, aware datetimes."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from catalog.models import LEVEL_USES
from config.exceptions import Forbidden, InvalidInput

LEVEL_ORDER = list(LEVEL_USES)  # least intrusive first: a generation pays its highest level


def currency_checked(code: str | None) -> str:
    code = (code or settings.ROYALTIES_DEFAULT_CURRENCY).upper()
    if code not in settings.ROYALTIES_CURRENCIES:
        accepted = ", ".join(sorted(settings.ROYALTIES_CURRENCIES))
        raise InvalidInput(
            f"unknown currency '{code}'; accepted: {accepted}", details={"currency": code}
        )
    return code


def _require_staff(actor: AbstractBaseUser, what: str) -> None:
    if not actor.is_staff:
        raise Forbidden(f"only staff can {what}")


def _aware(moment: datetime, name: str) -> datetime:
    if timezone.is_naive(moment):
        raise InvalidInput(f"{name} needs a time zone", details={name: str(moment)})
    return moment
