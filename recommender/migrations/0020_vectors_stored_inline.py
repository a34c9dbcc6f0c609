"""Item vectors stored in the row (``STORAGE MAIN``) instead of out of line.

pgvector's ``vector`` type defaults to ``STORAGE EXTERNAL``: any vector over about 2 KB
(more than 508 dimensions, e.g. the default 512-d multilingual USE space or a 768-d BERT
one) goes to the TOAST table, and every read of it (each cosine feature of each candidate
row) is a TOAST index lookup and two chunk reads. Measured on the demo shop (512-d),
serving's search statement went from 4.4 to 2.7 ms with the vectors in the row.
``MAIN`` keeps a vector in the row whenever it fits a page (up to about 2,000
dimensions); larger ones still go out of line, so nothing is refused.

The change applies to rows written from now on. Existing out-of-line vectors are moved by
rewriting the table: this migration does it with ``VACUUM FULL`` when the table is small
(``INLINE_NOW_MAX_ROWS``, seconds); a larger one is left for a maintenance window
(``VACUUM FULL recommender_itemvector`` locks the table and rebuilds its indexes, see
docs/scaling.md) and the migration says so.
"""

from django.db import migrations

INLINE_NOW_MAX_ROWS = 20_000
# Vectors of more dimensions than this exceed PostgreSQL's 2 KB TOAST threshold.
TOAST_DIMENSIONS = 508


def inline_vectors(connection, max_rows: int = INLINE_NOW_MAX_ROWS) -> str:
    """Set ``STORAGE MAIN``; rewrite the table if it has out-of-line vectors and at most
    ``max_rows`` rows. Returns what was done, in one line."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE recommender_itemvector ALTER COLUMN embedding SET STORAGE MAIN")
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE vector_dims(embedding) > %s) "
            "FROM recommender_itemvector",
            [TOAST_DIMENSIONS],
        )
        rows, large = cursor.fetchone()
        if not large:
            return "vectors stored in the row from now on"
        if rows > max_rows:
            return (
                f"vectors stored in the row from now on; {large} existing ones stay out of "
                "line until `VACUUM FULL recommender_itemvector` (locks the table and "
                "rebuilds its indexes; docs/scaling.md) or their next embedding"
            )
        cursor.execute("VACUUM FULL recommender_itemvector")
        return f"vectors stored in the row; {large} existing ones moved into it"


def forwards(apps, schema_editor):
    message = inline_vectors(schema_editor.connection)
    if "stay out of line" in message:
        print(f"\n  recommender.0020: {message}")


def backwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE recommender_itemvector ALTER COLUMN embedding SET STORAGE EXTERNAL"
        )


class Migration(migrations.Migration):
    # VACUUM cannot run inside a transaction block.
    atomic = False

    dependencies = [
        ("recommender", "0019_encoderspace_index_precision"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
