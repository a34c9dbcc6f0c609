"""``manage.py encoder_space create|activate|retire|reindex|list|ensure-default``: blue/green
models, and each space's index precision."""

import json

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError

from recommender import spaces
from recommender.models import (
    DEFAULT_TEXT_TEMPLATE,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    EncoderSpace,
    IndexPrecision,
)


def parse_option(raw: str) -> tuple[str, object]:
    """``k=v`` with v read as JSON when it parses (numbers, booleans), else as a string."""
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise CommandError(f"--option {raw!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


PRECISION_HELP = (
    "the HNSW index's type: vector (default) or halfvec (half the index size; the stored "
    "vectors stay full precision)"
)
M_HELP = (
    "links per node of the HNSW graph, 2-100 (pgvector's m, default 16): a denser graph "
    "finds more true neighbours at the same search breadth, builds slower and is larger"
)
EF_CONSTRUCTION_HELP = (
    "candidates kept while building the HNSW graph, 4-1000 and at least 2 x m (pgvector's "
    "ef_construction, default 64): higher builds a better graph, more slowly"
)


def add_graph_arguments(parser, *, default_m=None, default_ef=None) -> None:
    parser.add_argument("--m", type=int, default=default_m, help=M_HELP)
    parser.add_argument(
        "--ef-construction", type=int, default=default_ef, help=EF_CONSTRUCTION_HELP
    )


def describe(precision: str, graph: spaces.Graph) -> str:
    """``vector, m 16, ef_construction 64``: an index's precision and graph shape."""
    return f"{precision}, m {graph.m}, ef_construction {graph.ef_construction}"


class Command(BaseCommand):
    help = (
        "Manage encoder spaces: create one (built in the background by the workers while the "
        "active one keeps serving), activate it in one step, retire old ones, switch a "
        "space's index between vector and halfvec, list coverage."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a space and queue its build")
        create.add_argument("name")
        create.add_argument("--plugin", required=True, help="e.g. use-multilingual, hashing")
        create.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
        create.add_argument("--template", default=DEFAULT_TEXT_TEMPLATE)
        create.add_argument(
            "--inline", action="store_true", help="build here instead of queueing to workers"
        )
        create.add_argument("--precision", default=IndexPrecision.VECTOR, help=PRECISION_HELP)
        add_graph_arguments(create, default_m=HNSW_M, default_ef=HNSW_EF_CONSTRUCTION)
        activate = sub.add_parser("activate", help="make a space the one that serves")
        activate.add_argument("name")
        activate.add_argument(
            "--force", action="store_true", help="activate even if vectors are missing"
        )
        retire = sub.add_parser("retire", help="drop a space's vectors and index")
        retire.add_argument("name")
        reindex = sub.add_parser(
            "reindex",
            help="rebuild a space's HNSW index in another precision or graph shape (the old "
            "index serves until the new one is built); what is not given stays as it is",
        )
        reindex.add_argument("name")
        reindex.add_argument("--precision", help=PRECISION_HELP + "; default: the space's own")
        add_graph_arguments(reindex)
        sub.add_parser("list", help="spaces with coverage and stale counts")
        sub.add_parser("ensure-default", help="create and activate the default space if none")

    def handle(self, *args, action: str, **options):
        try:
            getattr(self, "do_" + action.replace("-", "_"))(options)
        except (ValidationError, ImproperlyConfigured) as exc:
            message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
            raise CommandError(message) from None

    def _space(self, name: str) -> EncoderSpace:
        space = EncoderSpace.objects.filter(name=name).first()
        if space is None:
            names = ", ".join(EncoderSpace.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no encoder space {name!r} (spaces: {names})")
        return space

    def do_create(self, options):
        opts = dict(parse_option(raw) for raw in options["option"])
        space = spaces.create_space(
            options["name"],
            options["plugin"],
            opts,
            text_template=options["template"],
            index_precision=options["precision"],
            graph=spaces.Graph(options["m"], options["ef_construction"]),
        )
        self.stdout.write(f"created {space}")
        if options["inline"]:
            from django.core.management import call_command

            call_command("embed", space=space.name, stdout=self.stdout, stderr=self.stderr)
        else:
            from recommender.tasks import build_space

            build_space.delay(space.pk)
            self.stdout.write("build queued; `manage.py encoder_space list` shows progress")

    def do_activate(self, options):
        space = self._space(options["name"])
        cover = spaces.coverage(space)
        if cover.missing and not options["force"]:
            raise CommandError(
                f"space {space.name!r} covers {cover.ratio:.0%} of active items "
                f"({cover.missing} missing); wait for the build or pass --force"
            )
        spaces.activate_space(space)
        self.stdout.write(f"active space is now {space.name}")

    def do_retire(self, options):
        space = spaces.retire_space(self._space(options["name"]))
        self.stdout.write(f"retired {space.name}")

    def do_reindex(self, options):
        space = self._space(options["name"])
        precision = spaces.check_precision(options["precision"] or space.index_precision)
        graph = spaces.check_graph(
            space.index_m if options["m"] is None else options["m"],
            space.index_ef_construction
            if options["ef_construction"] is None
            else options["ef_construction"],
        )
        if spaces.needs_index(space) and not spaces.index_valid(space, precision, graph):
            new = f"{spaces.index_name(space, precision, graph)} ({describe(precision, graph)})"
            old = spaces.graph_of(space)
            self.stdout.write(
                f"building {new} for space {space.name}, {spaces.coverage(space).vectors} "
                f"vectors; {spaces.index_name(space)} ({describe(space.index_precision, old)}) "
                "serves meanwhile…"
            )
        done = spaces.reindex_space(space, precision, graph)
        if done.index is None:
            self.stdout.write(
                f"space {space.name} will be indexed as {describe(precision, graph)} when its "
                "build completes"
            )
            return
        replaced = f"; dropped {done.replaced}" if done.replaced else ""
        self.stdout.write(
            f"space {space.name} serves from {done.index} ({describe(precision, graph)}, "
            f"{done.size_bytes / 2**20:,.1f} MiB, built in {done.seconds:.1f}s){replaced}"
        )

    def do_list(self, options):
        rows = EncoderSpace.objects.all()
        if not rows:
            self.stdout.write("no encoder spaces yet (manage.py encoder_space ensure-default)")
        for space in rows:
            cover = spaces.coverage(space)
            mark = "*" if space.is_active else " "
            self.stdout.write(
                f"{mark} {space.name:<20} {space.plugin:<22} {space.dim:>5}d "
                f"{space.index_precision:<7} m{space.index_m}/ef{space.index_ef_construction:<4} "
                f"{space.status:<9} "
                f"{cover.vectors}/{cover.active_items} vectors ({cover.ratio:.0%}), "
                f"{cover.stale} stale"
            )

    def do_ensure_default(self, options):
        space = spaces.ensure_default_space()
        self.stdout.write(f"active space: {space}")
