"""A checker for recommendation copy: the blurbs ``explain.blurb`` writes, read as an editor.

``check`` reads one text and returns what is wrong with it, as ``Finding`` objects:

- ``mixed_script``: a Latin word in Chinese copy, or a Chinese (or other CJK) character or
  full-width punctuation in English copy. Brand names (``brand``), the names the copy
  quotes (``names``: the item's and the anchor's titles, the search text) and
  model-number-like tokens (``USB-C``, ``750ml``, ``IPS``) are allowed;
- ``dangling_negation``: a negation with nothing to negate ("主打不、起皱", "non-,");
- ``lost_negation``: a word that the item's own text (``source``) only ever says negated
  ("不易起皱", "without tangling") appearing without its negation ("主打起皱");
- ``empty_phrase``: empty quotes or brackets, doubled or dangling separators ("、、",
  "，。", "主打，");
- ``repeated_phrase``: one phrase twice in one text;
- ``keyword_debris``: a bracketed list of loose words ("(12.4, 2.5, high)");
- ``too_long``: longer than ``explain.BLURB_MAX_CHARS`` for the language;

and ``check_list`` finds the list-level fault, ``repeated_blurb``: one text for several
items of one list. ``check_catalogue`` writes and checks the blurbs of a whole catalogue
for every reason kind (``explain.REASON_KINDS``) in every language, with a representative
evidence per kind; ``manage.py check_copy`` runs it over the stored items.

No database: everything here reads texts only.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from encoders.textprep import normalize
from recommender.serving import explain

__all__ = [
    "FINDING_KINDS",
    "CatalogueReport",
    "Finding",
    "check",
    "check_catalogue",
    "check_list",
]

FINDING_KINDS = (
    "mixed_script",
    "dangling_negation",
    "lost_negation",
    "empty_phrase",
    "repeated_phrase",
    "keyword_debris",
    "too_long",
    "repeated_blurb",
)
# Items per list in ``check_catalogue``'s list-level check (a typical page of results).
LIST_SIZE = 10


@dataclass(frozen=True)
class Finding:
    """One fault in a text: ``kind`` (one of :data:`FINDING_KINDS`), ``detail`` (the part
    at fault), ``text`` (the whole text) and ``where`` (item, reason and language, filled
    in by ``check_catalogue``)."""

    kind: str
    detail: str
    text: str
    where: str = ""

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{where}{self.kind}: {self.detail!r} in {self.text!r}"


# --- scripts --------------------------------------------------------------------------

_CJK = (
    "\u3000-\u303f"  # CJK punctuation (。、《》「」)
    "\u3040-\u30ff"  # kana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han
    "\uac00-\ud7af"  # Hangul
    "\uff00-\uffef"  # full-width forms (，（）：)
)
_CJK_RUN = re.compile(f"[{_CJK}]+")
_HAN_CHAR = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# A Latin "word" in Chinese copy: letters, digits and the joiners model numbers use.
_LATIN_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9+\-./&'’]*")
# Units written in Latin letters after a number ("130 cm"), allowed in Chinese copy.
_UNITS = frozenset(
    "ml l cl g kg mg mm cm m km w kw mah v hz khz ghz gb tb mb kb db lb oz in ft h min s x".split()
)


def _is_model_like(token: str) -> bool:
    """``USB-C``, ``Type-C``, ``iPhone``, ``SPF50``, ``750ml``, ``IPS``: a model number,
    an acronym or a unit, which Chinese copy writes in Latin letters too."""
    if any(ch.isdigit() for ch in token):
        return True
    letters = [ch for ch in token if ch.isalpha()]
    if len(letters) >= 2 and all(ch.isupper() for ch in letters):
        return True  # an acronym
    # An upper-case letter after the first one: "iPhone", "Type-C", "PlayStation".
    return any(ch.isupper() for ch in token[1:]) or token.lower() in _UNITS


# What stands in for a name in the masked text: neither Latin nor CJK, and not a word.
_MASK = "§"


def _masked(text: str, names: Sequence[str]) -> str:
    """``text`` with every name it quotes (whole, or clipped to a prefix before "…")
    replaced by a placeholder: a name is the catalogue's or the shopper's words, not the
    copy's, and may be in any script or repeat ("Toy Story (1995)", "Heat (1995)")."""
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, _MASK)
    # A clipped name: the longest prefix of a name that ends where a "…" starts.
    position = text.find("…")
    while position > 0:
        longest = 0
        for name in names:
            length = min(len(name), position)
            while length > longest and not name.startswith(text[position - length : position]):
                length -= 1
            longest = max(longest, length)
        if longest >= 2:
            text = text[: position - longest] + _MASK + text[position + 1 :]
            position -= longest
        position = text.find("…", position + 1)
    return text


def _mixed_script(text: str, lang: str) -> list[str]:
    """Words of the other script in a masked text (model numbers allowed in Chinese)."""
    if lang == "zh":
        return [
            token
            for token in (m.group().rstrip(".-/'’") for m in _LATIN_TOKEN.finditer(text))
            if any(ch.isalpha() for ch in token) and not _is_model_like(token)
        ]
    return _CJK_RUN.findall(text)


# --- negations ------------------------------------------------------------------------

_ZH_NEGATIONS = ("不易", "不会", "不用", "没有", "不", "无", "免", "防", "非", "没", "别")
_EN_NEGATIONS = ("no", "not", "non", "without", "never", "free of")
_ZH_NEGATION = "|".join(_ZH_NEGATIONS)
_EN_NEGATION = "|".join(n.replace(" ", r"\s+") for n in _EN_NEGATIONS)
_PUNCT = r"，。、；：！？,.;:!?…)）》”\"'」\]"
_DANGLING = {
    "zh": re.compile(rf"(?:{_ZH_NEGATION})(?=[{_PUNCT}]|\s*$)"),
    "en": re.compile(
        rf"(?<![\w-])(?:{_EN_NEGATION})(?:-(?=[\s{_PUNCT}]|$)|\s*(?=[{_PUNCT}]|$)"
        r"|\s+(?=(?:and|or|but)\b))",
        re.IGNORECASE,
    ),
}
# A negated word in the item's own text: the negation, then (Chinese) two characters or
# (English) one word.
_NEGATED = {
    "zh": re.compile(rf"({_ZH_NEGATION})([\u4e00-\u9fff]{{2}})"),
    "en": re.compile(rf"(?<![\w-])({_EN_NEGATION})[\s-]+([A-Za-z]{{4,}})", re.IGNORECASE),
}


# Words a negation in a title or description often precedes that say nothing on their own
# ("No One Knew", "Not Your Negro"): never reported as a lost negation.
_EN_FILLERS = frozenset(
    "your their this that these those only just more less longer matter doubt need other "
    "much many what when with from into even ever have other such".split()
)


def _negated_at(text: str, position: int, lang: str) -> bool:
    """Whether the word at ``position`` of ``text`` follows a negation."""
    before = text[:position]
    if lang == "zh":
        return before.endswith(_ZH_NEGATIONS)
    return bool(re.search(rf"(?<![\w-])(?:{_EN_NEGATION})[\s-]+$", before, re.IGNORECASE))


def _occurrences(text: str, word: str, lang: str) -> list[int]:
    if lang == "zh":
        return [m.start() for m in re.finditer(re.escape(word), text)]
    pattern = rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])"
    return [m.start() for m in re.finditer(pattern, text, re.IGNORECASE)]


def _lost_negations(text: str, lang: str, source: str) -> list[str]:
    """Words the source only says negated that the text says without the negation."""
    lost = []
    source = normalize(source)
    for match in _NEGATED[lang].finditer(source):
        word = match.group(2)
        if word in lost or word.lower() in _EN_FILLERS:
            continue
        in_text = _occurrences(text, word, lang)
        if not in_text or all(_negated_at(text, pos, lang) for pos in in_text):
            continue
        # The source says the word plainly somewhere else too: then it is the item's word.
        if all(_negated_at(source, pos, lang) for pos in _occurrences(source, word, lang)):
            lost.append(word)
    return lost


# --- phrases --------------------------------------------------------------------------

_EMPTY = re.compile(
    r"《\s*》|“\s*”|\"\s*\"|‘\s*’|「\s*」|\(\s*\)|（\s*）|\[\s*\]"
    r"|[、，,;；:：]\s*[、，,;；:：。.!！?？]"  # two separators in a row, or one before the end
    r"|^\s*[、，,;；:：。.]"  # a text that starts with a separator
    r"|主打\s*[，,。、]|主打\s*$"  # a lead-in with nothing after it
)
_SEPARATORS = re.compile(r"[，。、；：！？,;:!?()（）《》“”\"—–]|\.(?=\s|$)|\s+and\s+")
_DEBRIS = re.compile(r"[(（]\s*[^()（）\s,，、]+(?:\s*[,，、]\s*[^()（）\s,，、]+)+\s*[)）]")
_REPEATED_WORD = re.compile(r"(?<![\w-])([A-Za-z]{2,})\s+\1(?![\w-])", re.IGNORECASE)


def _repeated_phrases(text: str) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for part in _SEPARATORS.split(text):
        phrase = normalize(part).lower()
        if len(phrase) < 2:
            continue
        if phrase in seen and phrase not in repeated:
            repeated.append(phrase)
        seen.add(phrase)
    repeated += [m.group() for m in _REPEATED_WORD.finditer(text)]
    return repeated


# --- the checks -----------------------------------------------------------------------


def check(
    text: str,
    lang: str,
    *,
    brand: str | None = None,
    names: Iterable[str] = (),
    source: str | None = None,
    max_chars: int | None = None,
) -> list[Finding]:
    """What is wrong with one piece of copy in ``lang`` (``"zh"`` or ``"en"``).

    ``brand`` and ``names`` (titles and search texts the copy quotes) may be in either
    script; ``source`` is the item's own text, to find negations the copy dropped;
    ``max_chars`` defaults to ``explain.BLURB_MAX_CHARS[lang]``. ``[]`` when it reads well.
    """
    lang = explain.pick_language(lang)
    findings: list[Finding] = []

    def found(kind: str, detail: str) -> None:
        findings.append(Finding(kind, detail, text))

    stripped = normalize(text or "")
    if not stripped or not re.search(r"[^\W_]", stripped):
        found("empty_phrase", text or "")
        return findings
    limit = max_chars if max_chars is not None else explain.BLURB_MAX_CHARS[lang]
    if len(text) > limit:
        found("too_long", f"{len(text)} > {limit} characters")
    # Names are checked for nothing but length: the copy quotes them as they are.
    masked = _masked(text, [normalize(n) for n in (brand, *names) if n and normalize(n)])
    for run in _mixed_script(masked, lang):
        found("mixed_script", run)
    for match in _DANGLING[lang].finditer(masked):
        found("dangling_negation", masked[max(0, match.start() - 6) : match.end() + 2])
    if source:
        for word in _lost_negations(masked, lang, source):
            found("lost_negation", word)
    for match in _EMPTY.finditer(masked):
        found("empty_phrase", match.group())
    for phrase in _repeated_phrases(masked):
        found("repeated_phrase", phrase)
    for match in _DEBRIS.finditer(masked):
        found("keyword_debris", match.group())
    return findings


def check_list(texts: Sequence[tuple[str, str]]) -> list[Finding]:
    """List-level faults of ``(item key, text)`` pairs shown together: one text for
    several different items (``repeated_blurb``)."""
    keys_by_text: dict[str, list[str]] = defaultdict(list)
    for key, text in texts:
        keys_by_text[text].append(key)
    return [
        Finding("repeated_blurb", f"for {', '.join(dict.fromkeys(keys))}", text)
        for text, keys in keys_by_text.items()
        if len(set(keys)) > 1
    ]


# --- a whole catalogue ----------------------------------------------------------------


@dataclass
class CatalogueReport:
    """What ``check_catalogue`` wrote (``texts``: ``(where, blurb)`` pairs) and found."""

    items: int = 0
    blurbs: int = 0
    findings: list[Finding] = dataclasses.field(default_factory=list)
    texts: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Findings by kind, every kind listed."""
        counts = dict.fromkeys(FINDING_KINDS, 0)
        for finding in self.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        return counts


def _source(item: explain.ItemText) -> str:
    """Every text of the item a blurb may read, for the lost-negation check."""
    attributes = item.attributes if isinstance(item.attributes, dict) else {}
    translations = getattr(item, "translations", None) or {}
    parts = [item.title, item.description, *item.tags]
    parts += [str(attributes.get(k) or "") for k in ("title_en", "description_en")]
    for fields in translations.values():
        if isinstance(fields, dict):
            parts += [str(v) for v in fields.values() if isinstance(v, str)]
    return " ".join(p for p in parts if p)


def representative_evidence(
    kind: str, anchor: explain.ItemText, anchor_kind: str, query: str
) -> explain.Evidence:
    """Evidence of ``kind`` with everything a reason of any kind may name: an anchor item,
    the behaviour on it and a search text. A strength field (similarity, count), where
    ``Evidence`` has one, is set strong enough for the reason to name the anchor."""
    values: dict[str, object] = {
        "anchor": anchor,
        "anchor_kind": anchor_kind,
        "query": query,
        "anchor_id": "anchor",
        "similarity": 1.0,
        "cooccurrence": 100,
        "category": True,
    }
    names = {f.name for f in dataclasses.fields(explain.Evidence)} - {"kind"}
    return explain.Evidence(kind, **{k: v for k, v in values.items() if k in names})


def check_catalogue(
    items: Sequence[tuple[str, explain.ItemText]],
    *,
    languages: Sequence[str] = explain.LANGUAGES,
    kinds: Sequence[str] | None = None,
    list_size: int = LIST_SIZE,
) -> CatalogueReport:
    """Write and check a blurb for every item, every reason kind and every language.

    The evidence for item ``i`` anchors on item ``i + 1`` (with a behaviour cycling
    through ``explain.ANCHOR_KINDS``); the search text is the item's own title in that
    language for even ``i`` (so the reason lists shared words) and the anchor's for odd
    ``i``; every third item gets bare evidence (the kind alone: the generic phrasings).
    Consecutive items form lists of ``list_size`` for ``check_list``.
    """
    report = CatalogueReport(items=len(items))
    kinds = tuple(kinds or explain.REASON_KINDS)
    for lang in languages:
        for kind in kinds:
            page: list[tuple[str, str]] = []
            for i, (key, item) in enumerate(items):
                anchor = items[(i + 1) % len(items)][1]
                title = explain.display_title(item, lang)
                anchor_title = explain.display_title(anchor, lang)
                query = title if i % 2 == 0 else anchor_title
                anchor_kind = explain.ANCHOR_KINDS[i % len(explain.ANCHOR_KINDS)]
                evidence = (
                    explain.Evidence(kind)
                    if i % 3 == 2
                    else representative_evidence(kind, anchor, anchor_kind, query)
                )
                reason = explain.explain(item, evidence, lang)
                text = explain.blurb(item, reason, lang)
                report.blurbs += 1
                brand = item.attributes.get("brand") if isinstance(item.attributes, dict) else None
                where = f"{key} {kind} {lang}"
                for finding in check(
                    text,
                    lang,
                    brand=str(brand) if brand else None,
                    names=(title, anchor_title, query),
                    source=_source(item),
                ):
                    report.findings.append(dataclasses.replace(finding, where=where))
                page.append((key, text))
                report.texts.append((where, text))
                if len(page) == list_size or i == len(items) - 1:
                    for finding in check_list(page):
                        listed = f"list of {kind} {lang}"
                        report.findings.append(dataclasses.replace(finding, where=listed))
                    page = []
    return report
