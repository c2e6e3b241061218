"""python manage.py audit_model: seed 003 section 5.2 on the platform's generations.

For the N most recent generations of a model version (optionally making `--generate` new ones
first, through the product's services): each output's clips are searched against the clips
of the model's training recordings. Prints Table 2 (similarity of outputs to their references
versus to their most similar training recording) and Table 3 (outputs whose most similar
non-reference training recording, and top-k training recordings, reach each threshold);
saves outputs.csv, table3.csv, model.png and summary.json under
TDA_STATE_DIR/reports/audit_model-<time>/.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from attribution.audit import AuditError
from attribution.studies.audit import ModelOptions, model_study
from config.exceptions import DomainError


def _cell(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


class Command(BaseCommand):
    help = "Seed 003 model study: outputs vs references and vs the training set."

    def add_arguments(self, parser):
        parser.add_argument("--generations", type=int, default=20, help="outputs to study")
        parser.add_argument("--generate", type=int, default=0, help="make new ones first")
        parser.add_argument("--model-version", type=int, help="id (default: the active one)")
        parser.add_argument("--encoder", help="name@version (default: AUDIT_ENCODER or active)")
        parser.add_argument("--user", default="maker", help="who asks for --generate")
        parser.add_argument("--seconds", type=float, help="length of new generations")
        parser.add_argument("--references", type=int, default=2, help="per new generation")
        parser.add_argument("--k", type=int, default=10, help="Table 3's top k")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **o):
        try:
            options = ModelOptions(
                generations=o["generations"], generate=o["generate"],
                model_version_id=o["model_version"], encoder=o["encoder"], user=o["user"],
                seconds=o["seconds"], references=o["references"], k=o["k"], seed=o["seed"],
            )  # fmt: skip
            report = model_study(options=options, out=self.stdout.write)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        except AuditError as exc:
            raise CommandError(str(exc)) from exc
        s = report.summary
        self.stdout.write("")
        self.stdout.write(f"Table 2 ({len(report.rows)} outputs of {s['model_version']}, "
                          f"encoder {s['encoder']})")  # fmt: skip
        self.stdout.write(f"{'similarity':<40} {'mean':>6} {'median':>6} {'std':>6}")
        labels = {
            "output_vs_references": "output & its references (best)",
            "output_vs_top_training": "output & #1 training recording",
            "output_vs_top_non_reference_training": "output & #1 non-reference training rec.",
        }
        for key, label in labels.items():
            row = s["table2"][key]
            self.stdout.write(f"{label:<40} {_cell(row['mean'])} {_cell(row['median'])} "
                              f"{_cell(row['std'])}")  # fmt: skip
        k = o["k"]
        self.stdout.write("")
        self.stdout.write("Table 3 (non-reference training recordings at or above a threshold)")
        self.stdout.write(f"{'threshold':<20} {'value':>6} {'k=1':>5} {'share':>7} "
                          f"{f'k={k}':>6} {'share':>7}")  # fmt: skip
        for row in s["table3"]:
            self.stdout.write(
                f"{row['threshold']:<20} {row['value']:>6.4f} {row['top1_count']:>5} "
                f"{_cell(row['top1_share'], '.1%'):>7} {row[f'top{k}_count']:>6} "
                f"{_cell(row[f'top{k}_share'], '.1%'):>7}"
            )
        self.stdout.write(f"report: {report.directory} ({s['seconds']:.0f} s)")
