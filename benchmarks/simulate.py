"""Simulated shoppers drive A/B experiments through the online loop.

Run by hand:  .venv/bin/python benchmarks/simulate.py [--shoppers 1500] [--aa-runs 8]
                                                      [--skip-ab]

Own embedded servers (.recsite/bench-simulate) with the demo shop. Shoppers with hidden
persona tastes (recommender/demo/simulator.py) browse the API in this process: each visit
is a list, a batch of impressions, clicks and purchases with known probabilities.

1. A/B: placement "sim-home", experiment "full-vs-popular": the control serves popular
   items only (sources ["popular"], the fixed blend), the treatment the full pipeline.
   The full pipeline sees each shopper's views, so it should win on CTR.
2. A/A: ``--aa-runs`` experiments whose two variants serve the same configuration, each
   with fresh shoppers: the share with p < 0.05 is the false-positive rate (about 5 %
   expected), printed with its 95 % Wilson and Clopper-Pearson intervals, and a
   Kolmogorov-Smirnov test of the p-values against the uniform distribution they follow
   when the test is calibrated.

Prints per variant the lists, impressions, clicks, CTR with its 95 % interval, the
p-value against the control and the sample-ratio check, as the dashboard and
``GET /api/v1/metrics/experiments/<name>`` report them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / ".recsite" / "bench-simulate"
sys.path.insert(0, str(ROOT))
from recsite import testing  # noqa: E402

HIGH = "1000000/min"
testing.use_data_dir(
    DATA_DIR,
    DEBUG="0",
    SECRET_KEY="bench-simulate-not-a-secret",
    SECURE_SSL_REDIRECT="0",
    RECOMMENDER_REQUIRE_API_KEY="0",  # in-process calls, on this machine only
    **{
        f"RECOMMENDER_{scope}_RATE": HIGH for scope in ("API", "RECOMMENDATIONS", "EVENTS", "BATCH")
    },
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=1500, help="A/B shoppers")
    parser.add_argument("--sessions", type=int, default=2, help="visits per shopper")
    parser.add_argument("--aa-runs", type=int, default=8)
    parser.add_argument("--aa-shoppers", type=int, default=400, help="shoppers per A/A run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-ab", action="store_true", help="run the A/A experiments only")
    return parser.parse_args()


def prepare_data() -> None:
    """The demo shop, embedded (once: reused by later runs)."""
    from django.core.management import call_command

    from recommender.models import Item

    call_command("migrate", verbosity=0)
    if not Item.objects.exists():
        call_command("load_demo", verbosity=0)


def experiment_on(placement: str, name: str, control: dict, treatment: dict):
    """A running experiment on ``placement`` with a control and a treatment configuration."""
    from recommender.models import Experiment, Scenario, Variant
    from recommender.serving import experiments

    Experiment.objects.filter(scenario__name=placement, is_running=True).update(is_running=False)
    scenario, _ = Scenario.objects.get_or_create(name=placement)
    experiment = Experiment.objects.create(name=name, scenario=scenario)
    for position, (variant, config) in enumerate((("control", control), ("treatment", treatment))):
        configuration, _ = Scenario.objects.update_or_create(
            name=f"{name}-{variant}", defaults=config
        )
        Variant.objects.create(
            experiment=experiment, name=variant, share=1, configuration=configuration,
            position=position,
        )  # fmt: skip
    experiments.start(experiment)
    experiment.refresh_from_db()
    return experiment


def run_ab(args) -> None:
    """Full pipeline against popular only; prints the experiment's results."""
    from recommender.demo.simulator import Simulator

    experiment = experiment_on(
        "sim-home",
        f"full-vs-popular-{int(time.time())}",
        {"sources": ["popular"], "use_learned_ranker": False},
        {},
    )
    started = time.perf_counter()
    totals = Simulator("sim-home", seed=args.seed).run(
        args.shoppers, args.sessions, prefix=f"ab{args.seed}"
    )
    print(f"A/B: {totals['sessions']} sessions in {time.perf_counter() - started:.0f}s")
    report(experiment)


def run_aa(args) -> None:
    """Experiments whose variants are the same: how often p < 0.05 (false positives)."""
    from recommender.demo.simulator import Simulator
    from recommender.learning import experiment_results

    significant, p_values = 0, []
    started = time.perf_counter()
    for run in range(args.aa_runs):
        experiment = experiment_on("sim-aa", f"a-a-{run}-{int(time.time())}", {}, {})
        Simulator("sim-aa", seed=args.seed * 100 + run).run(
            args.aa_shoppers, args.sessions, prefix=f"aa{args.seed}-{run}"
        )
        flush()
        found = experiment_results.results(experiment)
        p_value = found.variants[1].p_value_vs_control
        significant += p_value is not None and p_value < 0.05
        if p_value is not None:
            p_values.append(p_value)
        print(f"A/A run {run}: " + ", ".join(variant_line(v) for v in found.variants), flush=True)
    print(f"A/A: {args.aa_runs} runs in {time.perf_counter() - started:.0f}s")
    print(false_positive_line(significant, args.aa_runs, p_values))


def false_positive_line(significant: int, runs: int, p_values: list[float]) -> str:
    """The false-positive rate with its 95 % intervals, and a uniformity test of the
    p-values (a calibrated test gives uniform p-values under the null)."""
    from scipy import stats

    from recommender.learning.online_metrics import wilson

    if not runs:
        return "A/A: no run"
    rate = significant / runs
    low, high = wilson(significant, runs)
    cp_low = (
        float(stats.beta.ppf(0.025, significant, runs - significant + 1)) if significant else 0.0
    )
    cp_high = (
        float(stats.beta.ppf(0.975, significant + 1, runs - significant))
        if significant < runs
        else 1.0
    )
    line = (
        f"A/A: {significant} of {runs} runs significant at 0.05: false-positive rate "
        f"{rate:.3f}, 95 % Wilson [{low:.3f}, {high:.3f}], "
        f"Clopper-Pearson [{cp_low:.3f}, {cp_high:.3f}]"
    )
    if len(p_values) >= 2:
        uniform = stats.kstest(p_values, "uniform").pvalue
        line += f"; p-values uniform? KS p = {uniform:.3f}"
        line += "; p-values: " + ", ".join(f"{p:.2f}" for p in sorted(p_values))
    return line


def flush() -> None:
    from recommender.serving import served_lists

    served_lists.drain()


def variant_line(v) -> str:
    p = "-" if v.p_value_vs_control is None else f"{v.p_value_vs_control:.4f}"
    return (
        f"{v.name}: {v.lists} lists, {v.impressions} impressions, {v.clicks} clicks, "
        f"CTR {v.ctr.value:.3%} [{v.ctr.low:.3%}, {v.ctr.high:.3%}], p {p}"
    )


def report(experiment) -> None:
    """The experiment's results as the dashboard shows them."""
    from recommender.learning import experiment_results

    flush()
    found = experiment_results.results(experiment)
    for variant in found.variants:
        print(
            f"  {variant_line(variant)}; purchases {variant.purchases}, "
            f"conversion {variant.conversion.value:.3%}"
        )
    print(
        f"  sample-ratio check p = {found.srm_p_value:.3f}; mismatch: {found.sample_ratio_mismatch}"
    )
    winner = experiment_results.winner(experiment)
    print(f"  winner: {winner.name if winner else 'none'}")


def main() -> None:
    args = parse_args()
    if os.environ.get("DATABASE_URL") or os.environ.get("CELERY_BROKER_URL"):
        raise SystemExit(
            "unset DATABASE_URL and CELERY_BROKER_URL: this benchmark uses its own servers"
        )
    with testing.own_services(DATA_DIR):
        import django

        django.setup()
        prepare_data()
        if not args.skip_ab:
            run_ab(args)
        run_aa(args)


if __name__ == "__main__":
    main()
