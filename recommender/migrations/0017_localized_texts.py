# Item texts in several languages (issue 18): ``Item.translations``, a text hash that
# covers it, and the demo convention (``attributes.title_en`` / ``description_en``) moved
# into it.

import django.db.models.functions.comparison
import django.db.models.functions.text
from django.db import migrations, models

BATCH = 1000
# (attribute key, translated field, the longest text check_translations allows)
MOVED = (("title_en", "title", 500), ("description_en", "description", 20000))


def _movable(value, limit: int) -> bool:
    return isinstance(value, str) and value.strip() != "" and len(value) <= limit


def _batches(queryset):
    """``queryset`` in primary-key order, BATCH rows at a time (no long-held cursor)."""
    last = 0
    while True:
        batch = list(queryset.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not batch:
            return
        yield batch
        last = batch[-1].pk


def attributes_to_translations(apps, schema_editor):
    """``attributes.title_en`` / ``description_en`` → ``translations["en"]``.

    A value that is not a non-blank text within the limits of ``check_translations``
    stays where it is, so no data is lost.
    """
    Item = apps.get_model("recommender", "Item")
    keys = [key for key, _, _ in MOVED]
    candidates = Item.objects.filter(attributes__has_any_keys=keys).only(
        "pk", "attributes", "translations"
    )
    for batch in _batches(candidates):
        changed = []
        for item in batch:
            attributes = dict(item.attributes)
            english = dict((item.translations or {}).get("en") or {})
            for key, name, limit in MOVED:
                if key in attributes and _movable(attributes[key], limit):
                    value = attributes.pop(key)
                    english.setdefault(name, value)
            if attributes != item.attributes:
                item.attributes = attributes
                item.translations = {**(item.translations or {}), "en": english}
                changed.append(item)
        Item.objects.bulk_update(changed, ["attributes", "translations"])


def translations_to_attributes(apps, schema_editor):
    """The reverse: ``translations["en"]`` back into ``attributes`` (other languages go
    with the column)."""
    Item = apps.get_model("recommender", "Item")
    candidates = Item.objects.filter(translations__has_key="en").only(
        "pk", "attributes", "translations"
    )
    for batch in _batches(candidates):
        changed = []
        for item in batch:
            english = item.translations.get("en")
            if not isinstance(english, dict):
                continue
            attributes = dict(item.attributes or {})
            for key, name, _ in MOVED:
                if isinstance(english.get(name), str) and english[name]:
                    attributes.setdefault(key, english[name])
            translations = {k: v for k, v in item.translations.items() if k != "en"}
            item.attributes, item.translations = attributes, translations
            changed.append(item)
        Item.objects.bulk_update(changed, ["attributes", "translations"])


# The same text, then (only when there are translations) a separator and the translations'
# jsonb text: an item without translations keeps its hash, so its vectors stay fresh.
TEXT_HASH_AFTER = models.GeneratedField(
    db_persist=True,
    expression=django.db.models.functions.text.MD5(
        django.db.models.functions.text.Concat(
            "title",
            models.Value("\x1f"),
            "category",
            models.Value("\x1f"),
            django.db.models.functions.comparison.Cast("tags", models.TextField()),
            models.Value("\x1f"),
            "description",
            django.db.models.functions.comparison.Coalesce(
                models.Func(
                    models.Value("\x1f"),
                    django.db.models.functions.comparison.NullIf(
                        django.db.models.functions.comparison.Cast(
                            "translations", models.TextField()
                        ),
                        models.Value("{}"),
                    ),
                    arg_joiner=" || ",
                    output_field=models.TextField(),
                    template="(%(expressions)s)",
                ),
                models.Value(""),
                output_field=models.TextField(),
            ),
            output_field=models.TextField(),
        )
    ),
    output_field=models.CharField(max_length=32),
)


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0016_business_rules"),
    ]

    operations = [
        migrations.AddField(
            model_name="item",
            name="translations",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text=(
                    'the texts in other languages: {"en": {"title": "…", "description": "…"}}'
                ),
                verbose_name="translations",
            ),
        ),
        # Django cannot alter a generated column's expression: drop it and add it again
        # (PostgreSQL computes the new one for every row, in this transaction).
        migrations.RemoveField(model_name="item", name="text_hash"),
        migrations.AddField(model_name="item", name="text_hash", field=TEXT_HASH_AFTER),
        migrations.RunPython(attributes_to_translations, translations_to_attributes),
    ]
