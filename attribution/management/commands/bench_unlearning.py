"""python manage.py bench_unlearning --recording ID: revoke a recording's training consent as
its holders would (every holder of the recording and of its works, through the consent
services), run the removal job that starts in this process at once (instead of waiting for the
batch window and a worker), and print the timing and every verification figure.

`--scan` changes nothing: it prints every training recording's membership percentile (lowest
first), so staff know which recordings the model leans on (below `act_below`: a removal moves
weights) before they time one.

It changes the database as the portal would: the recording stays revoked and, when the
checks pass, the new model version is served. `--restore` grants training again afterwards
(the served version stays what the job left).
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from attribution.models import ModelUnlearning
from attribution.services.unlearning import model_unlearning_run, model_unlearning_schedule
from catalog.selectors import recording_get, recordings_consent_state
from catalog.services.consent import consent_grant, consent_revoke
from generation.selectors import active_model_version


class Command(BaseCommand):
    help = "Revoke a recording's training consent and time its removal from the served model."

    def add_arguments(self, parser):
        parser.add_argument("--recording", type=int)
        parser.add_argument(
            "--scan", action="store_true",
            help="print each training recording's membership percentile and change nothing",
        )  # fmt: skip
        parser.add_argument("--restore", action="store_true", help="grant training again after")
        parser.add_argument("--json", help="also write the job's report to this file")

    def handle(self, *args, recording: int | None, restore: bool, json: str | None, **options):
        if options["scan"]:
            return self._scan()
        if recording is None:
            raise CommandError("give --recording ID (or --scan)")
        target = recording_get(recording_id=recording)
        served = active_model_version()
        if target.pk not in served.training_recording_ids:
            raise CommandError(f"recording {target.pk} is not in the manifest of {served}")
        settings.UNLEARNING_ON_REVOCATION = True
        holders = recordings_consent_state(recording_ids=[target.pk])[target.pk]
        started = time.monotonic()
        for holder in holders:
            actor = _member(holder.holder_id)
            subject = {"work_id": holder.work_id} if holder.work_id else {"recording": target}
            _change(consent_revoke, actor, holder.holder_id, subject)
        job = model_unlearning_schedule(recording_ids=(target.pk,))
        if job is None:
            raise CommandError("no removal job was opened (is training still granted?)")
        ModelUnlearning.objects.filter(pk=job.pk).update(not_before=timezone.now() - timedelta(1))
        job = model_unlearning_run(job_id=job.pk)
        seconds = time.monotonic() - started
        reason = f" ({job.failure_reason})" if job.failure_reason else ""
        self.stdout.write(
            f"recording {target.pk} '{target.title}' from {served}: {job.status} "
            f"in {seconds:.0f} s{reason}"
        )
        report = job.report
        for name, check in report.get("checks", {}).items():
            figures = {k: v for k, v in check.items() if k != "passed"}
            self.stdout.write(f"  {name:17} {'passed' if check['passed'] else 'FAILED'}  {figures}")
        if report:
            self.stdout.write(
                f"  ascent steps {report['ascent_steps']} ({report['stopped']}), repair steps "
                f"{report['repair']['steps']}, seconds {report['seconds']}"
            )
        if job.result_model_version:
            self.stdout.write(f"  served: {job.result_model_version}")
        if json:
            from pathlib import Path

            result = {"status": job.status, "seconds": round(seconds, 1),
                      "reason": job.failure_reason, "report": report}  # fmt: skip
            Path(json).write_text(_dumps(result))
        if restore:
            for holder in holders:
                actor = _member(holder.holder_id)
                subject = {"work_id": holder.work_id} if holder.work_id else {"recording": target}
                _change(consent_grant, actor, holder.holder_id, subject)

    def _scan(self) -> None:
        from attribution.services.membership_scan import membership_scan

        served = active_model_version()
        started = time.monotonic()
        rows = membership_scan(
            model_version=served,
            progress=lambda done, total: self.stderr.write(f"scanned {done}/{total}"),
        )
        titles = {r["recording"]: recording_get(recording_id=r["recording"]).title for r in rows}
        seconds = time.monotonic() - started
        self.stdout.write(
            f"membership of {served}'s {len(rows)} training recordings ({seconds:.0f} s), "
            "lowest percentile first:"
        )
        for row in rows:
            lean = "  <- below act_below: a removal moves weights" if (
                row["percentile"] < row["act_below"]
            ) else ""  # fmt: skip
            self.stdout.write(
                f"  {row['recording']:>5} {titles[row['recording']][:32]:<32} "
                f"{row['percentile']:>5.1f} pct  loss {row['loss']:.4f}  "
                f"vs {len(row['heldout'])} held out{lean}"
            )


def _dumps(value) -> str:
    return json.dumps(value, indent=1, default=str)


def _member(holder_id: int):
    from catalog.models import RightsHolderMembership

    membership = RightsHolderMembership.objects.filter(holder_id=holder_id).first()
    if membership is None:
        raise CommandError(f"rights holder {holder_id} has no member to act for it")
    return membership.user


def _change(change, actor, holder_id: int, subject: dict) -> None:
    from catalog.models import RightsHolder, Work

    holder = RightsHolder.objects.get(pk=holder_id)
    if "work_id" in subject:
        subject = {"work": Work.objects.get(pk=subject["work_id"])}
    change(actor=actor, holder=holder, uses=["training"], note="bench_unlearning", **subject)
