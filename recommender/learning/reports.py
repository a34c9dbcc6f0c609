"""Writing an evaluation report: text tables, a JSON file and PNG charts."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from recommender.learning.evaluation import EvaluationReport

TABLE_METRICS = (
    "precision",
    "recall",
    "f1",
    "ndcg",
    "mrr",
    "map",
    "hit_rate",
    "coverage",
    "ild",
    "novelty",
    "popularity",
)


def table(report: EvaluationReport, section: str = "overall") -> str:
    """A fixed-width table: one row per recommender, one column per metric at each k."""
    results = getattr(report, section)
    columns = [f"{metric}@{k}" for k in report.ks for metric in TABLE_METRICS]
    width = max(len(name) for name in results) if results else 10
    lines = [" ".join([f"{'recommender':<{width}}"] + [f"{c:>13}" for c in columns])]
    for name, values in results.items():
        cells = [f"{values.get(c, 0.0):>13.4f}" for c in columns]
        lines.append(" ".join([f"{name:<{width}}"] + cells))
    return "\n".join(lines)


def intervals_table(report: EvaluationReport) -> str:
    """Each recommender's mean per-user metric and its difference to the reference, with
    their bootstrap intervals; ``*`` marks a difference whose interval excludes 0."""
    comparison = report.comparison
    if comparison is None:
        return ""
    share = f"{comparison.level:.0%}"
    reference = comparison.reference
    lines = [
        f"{share} bootstrap intervals over {comparison.users} users "
        f"({comparison.resamples} resamples, seed {comparison.seed}); differences are "
        f"paired, against {reference} ({comparison.reference_rule}):"
    ]
    width = max(len(name) for name in comparison.means)
    header = [f"{'recommender':<{width}}"]
    for metric in comparison.metrics:
        header += [f"{metric + ' [interval]':<26}", f"{'- ' + reference + ' [interval]':<30}"]
    lines.append(" ".join(header).rstrip())
    for name, means in comparison.means.items():
        cells = [f"{name:<{width}}"]
        for metric in comparison.metrics:
            own = means[metric]
            cells.append(f"{own.estimate:.4f} [{own.low:.4f}, {own.high:.4f}]".ljust(26))
            if name == reference:
                cells.append(f"{'(reference)':<30}")
                continue
            delta = comparison.differences[name][metric]
            mark = " *" if delta.excludes_zero else ""
            text = f"{delta.estimate:+.4f} [{delta.low:+.4f}, {delta.high:+.4f}]{mark}"
            cells.append(f"{text:<30}")
        lines.append(" ".join(cells).rstrip())
    lines.append("* the difference's interval excludes 0")
    return "\n".join(lines)


def write(report: EvaluationReport, directory: Path, *, charts: bool = True) -> list[Path]:
    """Save ``report.json`` and, unless disabled, bar charts of the main metrics."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "report.json"]
    written[0].write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False))
    if charts:
        written += _charts(report, directory)
    return written


def _charts(report: EvaluationReport, directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # no display: render straight to files
    import matplotlib.pyplot as plt

    k = 10 if 10 in report.ks else report.ks[-1]
    paths = []
    groups = [
        ("accuracy", ["precision", "recall", "f1", "ndcg", "mrr", "map", "hit_rate"]),
        ("beyond-accuracy", ["coverage", "ild"]),
    ]
    for title, metrics in groups:
        names = list(report.overall)
        fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
        bar = 0.8 / max(len(names), 1)
        for index, name in enumerate(names):
            values = [report.overall[name].get(f"{m}@{k}", 0.0) for m in metrics]
            ax.bar([x + index * bar for x in range(len(metrics))], values, bar, label=name)
        ax.set_xticks([x + bar * (len(names) - 1) / 2 for x in range(len(metrics))])
        ax.set_xticklabels([f"{m}@{k}" for m in metrics])
        ax.set_title(f"{report.protocol}: {title} ({report.cases} cases)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = directory / f"{title}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def record(report: EvaluationReport, params: dict, out: Path | None = None, *, charts: bool = True):
    """Write the report files and store an ``EvaluationRun``; returns (run, files)."""
    from datetime import UTC, datetime

    from django.conf import settings

    from recommender.models import EvaluationRun

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = out or Path(settings.RECSITE_DATA_DIR) / "reports" / f"eval-{stamp}"
    written = write(report, out, charts=charts)
    run = EvaluationRun.objects.create(
        protocol=report.protocol,
        space=report.space or "",
        params=params,
        cases=report.cases,
        metrics={
            "overall": report.overall,
            "cold_start": report.cold_start,
            # Older runs have no "split" and no "intervals": readers must not expect them.
            "split": report.split,
            "intervals": asdict(report.comparison) if report.comparison else None,
        },
        report_dir=str(out),
        seconds=report.seconds,
    )
    return run, written
