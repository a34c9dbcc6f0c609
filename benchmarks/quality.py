"""The quality benchmark on public data: the whole pipeline through the project's own
commands, then the outside baselines (benchmarks/quality_baselines.py) on the same split.

Run by hand:  .venv/bin/python benchmarks/quality.py [--dataset movielens|synthetic-10k]
                  [--max-users 0] [--tune-users 0] [--ranker-users 1000]
                  [--encoder PLUGIN [--encoder-option KEY=VALUE …]] [--out results.json]

A fresh data dir (``--data-dir``, default a new temporary folder) gets its own embedded
PostgreSQL and Redis, started by the first command and stopped at the end. Stages, each
timed: ``migrate``, ``import_items``, ``import_behaviours``, ``embed`` (or, with
``--encoder``, ``encoder_space create --inline`` and ``activate``), ``train_models`` and
``tune`` (when ``manage.py help`` lists them), ``train_ranker``, ``evaluate`` (every
user, cold slice < 3 training users, its ``report.json``), then the baselines in this
process on the events and item vectors read back from that database.

Prints every recommender's NDCG@10, recall@10, MAP@10 and cold-slice recall@10 with 95 %
bootstrap intervals over users (the baselines as "outside …"), and the wall time of every
stage. The pipeline's intervals come from the per-case values ``evaluate`` writes (where
it keeps no per-case MAP, the single held-out item's rank follows from its NDCG).
``--reuse --data-dir DIR`` prints the table again from a finished run's database and
report without re-running the stages.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import datasets  # noqa: E402
from benchmarks import quality_baselines as baselines  # noqa: E402
from recsite import testing  # noqa: E402

K = 10
COLD_THRESHOLD = 3  # the cold slice: the target has fewer than 3 training users
ALL_USERS = 10**9  # for an evaluate whose --max-users has no "every user" value
OUTSIDE = "outside "  # the baselines' names in the table: evaluate has a "text" of its own


@dataclass
class Stage:
    """One timed step of the run."""

    name: str
    command: str
    seconds: float
    status: str  # "ok", "skipped: …" or "failed: …"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="movielens", choices=sorted(datasets.DATASETS))
    parser.add_argument("--data", type=Path, help="the dataset folder (default: the dataset's own)")
    parser.add_argument(
        "--max-users", type=int, default=0, help="evaluate at most N users (0: every user)"
    )
    parser.add_argument(
        "--tune-users", type=int, default=0, help="tune on at most N users (0: every user)"
    )
    parser.add_argument(
        "--ranker-users", type=int, default=1000, help="train_ranker's --max-users (0: every)"
    )
    parser.add_argument("--encoder", help="encoder plugin of a new space (default: the default)")
    parser.add_argument(
        "--encoder-option", action="append", default=[], metavar="KEY=VALUE", dest="options"
    )
    parser.add_argument("--min-rating", type=float, default=datasets.POSITIVE_RATING)
    parser.add_argument("--seed", type=int, default=0, help="evaluate's user sample")
    parser.add_argument("--data-dir", type=Path, help="default: a new temporary folder")
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="--data-dir holds a finished run: skip the stages, score the baselines again "
        "and print the table from its evaluate report",
    )
    return parser.parse_args(argv)


class Runner:
    """``manage.py`` stages in subprocesses against one data dir, each timed and logged."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.env = testing.environ(
            RECSITE_DATA_DIR=str(data_dir),
            DJANGO_SETTINGS_MODULE="recsite.settings",
            DEBUG="1",
            RECOMMENDER_EMBED_ON_SAVE="0",  # `embed` does it, timed as its own stage
        )
        self.stages: list[Stage] = []
        self._commands: set[str] | None = None

    def commands(self) -> set[str]:
        """The management commands this checkout has (``manage.py help --commands``)."""
        if self._commands is None:
            out = testing.manage("help", "--commands", env=self.env)
            self._commands = {line.strip() for line in out.splitlines() if line.strip()}
        return self._commands

    def run(self, name: str, *args: str, optional: bool = False) -> str:
        """Run ``manage.py args`` as stage ``name``; its stdout. A failure stops the run,
        unless ``optional`` (then it is recorded and the run goes on)."""
        command = "manage.py " + " ".join(args)
        if args[0] not in self.commands():
            self.stages.append(Stage(name, command, 0.0, "skipped: command not available"))
            print(f"{name}: skipped: command not available", flush=True)
            return ""
        log = self.data_dir / f"stage-{name}.log"
        print(f"{name}: {command}", flush=True)
        started = time.perf_counter()
        with open(log, "w") as err:
            result = subprocess.run(
                [sys.executable, "manage.py", *args],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        seconds = time.perf_counter() - started
        status = "ok" if result.returncode == 0 else f"failed: exit {result.returncode}"
        self.stages.append(Stage(name, command, seconds, status))
        print(result.stdout.rstrip(), flush=True)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"{name}: {status} in {seconds:.1f}s (load average {load})", flush=True)
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            if not optional:
                raise SystemExit(f"{name} failed; the end of {log}:\n{tail}")
            print(tail, flush=True)
        return result.stdout


def evaluate_max_users(runner: Runner, max_users: int) -> str:
    """``--max-users`` for evaluate: ``max_users``, or "every user" in its own terms."""
    if max_users:
        return str(max_users)
    help_text = testing.manage("evaluate", "--help", env=runner.env)
    return "0" if "0 for every" in help_text or "0: every" in help_text else str(ALL_USERS)


def run_pipeline(runner: Runner, dataset: datasets.Dataset, args) -> Path:
    """Every stage up to ``evaluate``; the folder of evaluate's report."""
    runner.run("migrate", "migrate", "--no-input", "-v", "0")
    runner.run("import_items", "import_items", *dataset.items_args, "--no-progress")
    runner.run("import_behaviours", "import_behaviours", *dataset.behaviours_args, "--no-progress")
    if args.encoder:
        options = [f"--option={option}" for option in args.options]
        runner.run(
            "embed",
            "encoder_space", "create", "bench", "--plugin", args.encoder, *options, "--inline",
        )  # fmt: skip
        runner.run("activate", "encoder_space", "activate", "bench")
    else:
        runner.run("embed", "embed", "--no-progress")
    # The behaviour models first: the blend's tuning and the ranker's pools score with them.
    runner.run("train_models", "train_models", "--no-progress", optional=True)
    runner.run("tune", "tune", "--max-users", str(args.tune_users), "--no-progress", optional=True)
    runner.run(
        "train_ranker",
        "train_ranker", "--cases-per-user", "3", "--negatives", "all",
        "--max-users", str(args.ranker_users), "--no-progress",
    )  # fmt: skip
    report_dir = runner.data_dir / "evaluate"
    runner.run(
        "evaluate",
        "evaluate",
        "--max-users", evaluate_max_users(runner, args.max_users),
        "--seed", str(args.seed),
        "--min-rating", str(args.min_rating),
        "--cold-threshold", str(COLD_THRESHOLD),
        "--out", str(report_dir),
        "--no-charts",
        "--no-progress",
    )  # fmt: skip
    return report_dir


@dataclass
class SiteData:
    """The site's events and active-space vectors as arrays, and evaluate's sample."""

    interactions: baselines.Interactions
    vectors: np.ndarray | None
    space: str | None
    case_users: list[int]  # indices of the users evaluate drew, ascending
    case_targets: list[int]  # their held-out items (indices), as evaluate chose them


def read_site(args) -> SiteData:
    """Events, vectors and evaluate's cases, read back from the benchmark's database."""
    import django

    django.setup()
    from recommender import behaviour, spaces
    from recommender.learning import evaluation
    from recommender.models import Behaviour, Item, ItemVector

    events = list(
        Behaviour.objects.filter(item__isnull=False)
        .exclude(kind__in=behaviour.SIGNALLESS)
        .order_by("pk")
        .values_list("pk", "user_id", "item_id", "occurred_at")
    )
    positive = set(
        Behaviour.objects.filter(behaviour.positive_q(args.min_rating)).values_list("pk", flat=True)
    )
    items = list(Item.objects.order_by("pk").values_list("pk", "external_id"))
    item_pks = [pk for pk, _ in items]
    user_pks = sorted({user for _, user, _, _ in events})
    item_index = {pk: i for i, pk in enumerate(item_pks)}
    user_index = {pk: u for u, pk in enumerate(user_pks)}
    data = baselines.Interactions(
        user=np.array([user_index[e[1]] for e in events], dtype=np.int64),
        item=np.array([item_index[e[2]] for e in events], dtype=np.int64),
        time=np.array([e[3].timestamp() for e in events], dtype=np.float64),
        positive=np.array([e[0] in positive for e in events], dtype=bool),
        user_ids=[str(pk) for pk in user_pks],
        item_ids=[external_id for _, external_id in items],  # as the dataset names them
    )
    space = spaces.current_space()
    vectors = None
    if space is not None:
        vectors = np.zeros((len(item_pks), space.dim), dtype=np.float64)
        for item_id, embedding in ItemVector.objects.filter(space=space).values_list(
            "item_id", "embedding"
        ):
            if item_id in item_index:
                vectors[item_index[item_id]] = np.asarray(embedding, dtype=np.float64)
    max_users = args.max_users or None
    cases = evaluation.leave_one_out(
        max_users=max_users, seed=args.seed, min_rating=args.min_rating
    )
    return SiteData(
        interactions=data,
        vectors=vectors,
        space=space.name if space else None,
        case_users=[user_index[case.user_id] for case in cases],
        case_targets=[item_index[next(iter(case.targets))] for case in cases],
    )


def pipeline_estimates(
    report: dict, user_pks: list[str], cold: np.ndarray
) -> tuple[dict[str, dict[str, baselines.Estimate]], dict[str, np.ndarray]]:
    """Intervals for evaluate's recommenders from its per-case values, re-ordered to the
    baselines' users (``user_pks``), and each one's per-user NDCG for paired differences."""
    order = None
    if report.get("user_ids"):  # evaluate names each case's user: align on it
        position = {str(pk): i for i, pk in enumerate(report["user_ids"])}
        order = np.array([position[pk] for pk in user_pks])
    out, ndcgs = {}, {}
    for name, per_list in report["per_list"].items():
        ndcg = np.asarray(per_list[f"ndcg@{K}"], dtype=np.float64)
        hit = np.asarray(per_list[f"hit_rate@{K}"], dtype=np.float64)
        if f"map@{K}" in per_list:
            ap = np.asarray(per_list[f"map@{K}"], dtype=np.float64)
        else:  # one held-out item: NDCG = 1/log2(rank + 1) for a hit, so AP = 1/rank
            safe = np.where(ndcg > 0, ndcg, 1.0)
            ap = np.where(ndcg > 0, 1.0 / (np.exp2(1.0 / safe) - 1.0), 0.0)
        values = {f"ndcg@{K}": ndcg, f"recall@{K}": hit, f"map@{K}": ap}
        if order is not None:
            values = {metric: v[order] for metric, v in values.items()}
        out[name] = baselines.summarise(values, cold, k=K)
        ndcgs[name] = values[f"ndcg@{K}"]
    return out, ndcgs


def print_stages(stages: list[Stage]) -> None:
    print("\n| stage | wall time | status |\n|---|---|---|")
    for stage in stages:
        print(f"| {stage.name} | {stage.seconds:.1f} s | {stage.status} |")


def main(argv=None) -> None:
    args = parse_args(argv)
    if os.environ.get("DATABASE_URL") or os.environ.get("CELERY_BROKER_URL"):
        raise SystemExit("unset DATABASE_URL and CELERY_BROKER_URL: this benchmark uses its own")
    dataset = datasets.get(args.dataset, args.data)
    if args.reuse and not (args.data_dir and (args.data_dir / "evaluate/report.json").exists()):
        raise SystemExit("--reuse needs the --data-dir of a finished run")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="recsite-quality-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    testing.use_data_dir(data_dir, DEBUG="1")
    print(f"dataset {dataset.name} ({dataset.path}); data dir {data_dir}", flush=True)
    runner = Runner(data_dir)
    started = time.perf_counter()
    with testing.own_services(data_dir):  # stops the servers this run started
        try:
            if args.reuse:
                report_dir = data_dir / "evaluate"
            else:
                report_dir = run_pipeline(runner, dataset, args)
                pipeline_seconds = time.perf_counter() - started
                print(f"pipeline, migrate to evaluate's report: {pipeline_seconds:.1f}s")
            report = json.loads((report_dir / "report.json").read_text())

            begun = time.perf_counter()
            site = read_site(args)
            runner.stages.append(
                Stage("read arrays", "(in process)", time.perf_counter() - begun, "ok")
            )
            np.savez(
                data_dir / "items.npz",
                item_ids=np.array(site.interactions.item_ids),
                vectors=site.vectors if site.vectors is not None else np.zeros((0, 0)),
            )
            begun = time.perf_counter()
            outside = baselines.run(
                site.interactions, site.vectors, users=site.case_users, k=K,
                cold_threshold=COLD_THRESHOLD,
            )  # fmt: skip
            runner.stages.append(
                Stage("baselines", "quality_baselines.run", time.perf_counter() - begun, "ok")
            )
        finally:
            from django.apps import apps

            if apps.ready:  # leave no connection open to the servers being stopped
                from django.db import connections

                from recommender.serving import helper_connection

                helper_connection.shutdown()
                connections.close_all()
    total = time.perf_counter() - started

    same_users = outside.users == site.case_users
    test_split = baselines.leave_one_out(site.interactions, users=site.case_users)
    same_targets = same_users and test_split.targets.tolist() == site.case_targets
    cold = np.asarray(outside.cold, dtype=bool)
    user_pks = [site.interactions.user_ids[u] for u in outside.users]
    pipeline, pipeline_ndcg = pipeline_estimates(report, user_pks, cold)
    metrics = {**pipeline, **{OUTSIDE + name: v for name, v in outside.metrics.items()}}

    print(
        f"\n{dataset.name}: {report['cases']} users, {int(cold.sum())} cold targets "
        f"(< {COLD_THRESHOLD} training users), space {report['space']}; "
        f"same users as evaluate: {same_users}, same targets: {same_targets}"
    )
    print(baselines.table(metrics, K))
    print("\nevaluate's own cold slice (means):", ", ".join(
        f"{name} recall@{K} {values.get(f'recall@{K}', 0):.4f} ({values.get('lists', 0):.0f})"
        for name, values in report["cold_start"].items()
    ))  # fmt: skip
    best = max(pipeline, key=lambda name: pipeline[name][f"ndcg@{K}"].mean)
    delta = np.asarray(outside.per_user["blend"][f"ndcg@{K}"]) - pipeline_ndcg[best]
    low, high = baselines.bootstrap_interval(delta)
    print(
        f"blend − {best} NDCG@{K}: {delta.mean():+.4f} [{low:+.4f}, {high:+.4f}] "
        f"(paired bootstrap over users)"
    )
    print("validation NDCG@10:", ", ".join(f"{n} {v:.4f}" for n, v in outside.validation.items()))
    print("baseline settings:", outside.settings)
    print_stages(runner.stages)
    if not args.reuse:
        print(f"| pipeline (migrate → evaluate's report) | {pipeline_seconds:.1f} s | |")
    print(f"| total | {total:.1f} s | |")
    print(f"data dir {data_dir} (evaluate's report in {report_dir})")

    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "dataset": dataset.name,
                    "notes": dataset.notes,
                    "argv": sys.argv,
                    "space": report["space"],
                    "cases": report["cases"],
                    "cold_threshold": COLD_THRESHOLD,
                    "same_users": same_users,
                    "same_targets": same_targets,
                    "metrics": {
                        name: {m: asdict(e) for m, e in values.items()}
                        for name, values in metrics.items()
                    },
                    "blend_minus_pipeline": {
                        "against": best,
                        "mean": float(delta.mean()),
                        "low": low,
                        "high": high,
                    },
                    "validation": outside.validation,
                    "baseline_settings": outside.settings,
                    "baseline_seconds": outside.seconds,
                    "stages": [asdict(stage) for stage in runner.stages],
                    "reused": args.reuse,
                    "total_seconds": total,
                    "pipeline_seconds": None if args.reuse else pipeline_seconds,
                    "evaluate_report": str(report_dir / "report.json"),
                },
                indent=2,
                default=str,
            )
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
