"""``manage.py replay_lists``: how the learned ranker and the fixed blend would have ordered
the lists shoppers actually saw and clicked in (recommender.learning.replay)."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from recommender.learning.replay import replay
from recommender.serving import learned
from recommender.serving.ranking import BlendScorer


class Command(BaseCommand):
    help = "Replay logged, engaged lists under the learned ranker and the blend (MRR of clicks)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30, help="lists served in the last N days")
        parser.add_argument("--limit", type=int, default=1000, help="at most this many lists")

    def handle(self, *args, days: int, limit: int, **options):
        if days < 1 or limit < 1:
            raise CommandError("--days and --limit must be at least 1")
        since = timezone.now() - timedelta(days=days)
        scorers = {"blend": BlendScorer()}
        ranker = learned.load_latest_scorer()
        if ranker is not None:
            scorers["learned"] = ranker
        for name, scorer in scorers.items():
            report = replay(scorer, since=since, limit=limit)
            if not report.lists:
                raise CommandError(
                    "no list to replay: none served in that time was clicked, carted or bought "
                    "with its recommendation_id"
                )
            self.stdout.write(
                f"{name:<8} {report.lists} lists, {report.engagements} engaged items: "
                f"MRR as shown {report.mrr_logged:.4f}, replayed {report.mrr_replayed:.4f} "
                f"({report.found:.0%} of shown items rebuilt)"
            )
