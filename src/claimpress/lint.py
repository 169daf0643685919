"""The review rules: each a small function from a resolved claim (or the shared registry) to
findings, with a stable rule name an editor can silence in the claim file:

    lint:
      ignore:
        - {rule: untraced-number, match: "2019", reason: The year the law passed.}

No I/O here; "today" is passed in, so results never depend on the clock in tests.
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import re
from collections import ChainMap
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

from . import figures as fig
from . import prose
from .approvals import Approval, snapshot_claim
from .load import ClaimFile, Located, field_path, locate_in_field, one_of
from .model import Claim, Figure, Site, Source
from .problems import Problem, Severity
from .prose import Cite, FigureRef
from .resolve import Entry, Page, Registry

RULES: dict[str, tuple[Severity, str]] = {
    "unused-source": ("warning", "a source the claim never cites"),
    "incomplete-source": ("warning", "a source missing its url, publisher or date"),
    "no-archive": ("warning", "a source with a url but no archived copy (`archive_url`)"),
    "untraced-number": ("warning", "a number typed into prose that no figure produces"),
    "unsourced-figure": ("warning", "a figure with a value but no source"),
    "false-precision": ("warning", "a formula shown with more digits than its inputs have"),
    "future-date": ("warning", "a date after today"),
    "date-order": ("warning", "dates that contradict each other"),
    "stale-check": ("warning", "a check older than `stale_after_days` in site.yaml"),
    "not-a-question": ("warning", "a question or follow-up that does not end with `?`"),
    "uncited-summary": ("warning", "an executive summary with no citation"),
    "no-bottom-line": ("warning", "a last section whose heading is not a bottom line"),
    "unapproved-edit": ("warning", "a published claim edited with no correction or update"),
    "needs-approval": ("warning", "a published claim whose content has no approval"),
    "placeholder": ("warning", "prose still holding a `TODO` left by `claimpress new`"),
    "lint-ignore": ("warning", "an ignore with no reason, an unknown rule, or silencing nothing"),
}
"""Every rule: its severity and what it finds (`claimpress check` prints the name)."""


@dataclass(frozen=True)
class Finding:
    """What a rule found, before silencing: where, what, and the subject an ignore matches."""

    rule: str
    file: Located
    loc: tuple[str | int, ...]
    message: str
    subject: str = ""
    """What the finding is about, matched exactly by an ignore's `match`."""
    at: tuple[int, int] | None = None
    """An exact line and column inside the field (a number in a block of prose)."""
    key: bool = False
    """Locate at the field's key rather than its value."""

    def problem(self) -> Problem:
        """The finding as a problem printed like a compiler."""
        severity = RULES[self.rule][0]
        return self.file.problem(
            self.loc, self.message, severity=severity, rule=self.rule, key=self.key, at=self.at
        )


@dataclass(frozen=True)
class Context:
    """Everything a claim rule may look at."""

    page: Page
    registry: Registry
    site: Site
    today: dt.date
    """Rules read it only as `dated` says (a date after it, a stale check): on any other day
    a claim's findings are the same, and `gather` reuses them from the cache."""
    approval: Approval | None = None
    approved: bool = False
    """Whether the approval's hash matches the claim's current content."""

    @property
    def file(self) -> ClaimFile:
        """The claim file."""
        return self.page.file


ClaimRule = Callable[[Context], Iterable[Finding]]


# --- Sources -------------------------------------------------------------------------------


def unused_source(ctx: Context) -> Iterator[Finding]:
    """A source defined in the claim that its prose never cites."""
    cited = {s.key for s in ctx.page.sources}
    for key in ctx.page.claim.sources:
        if key not in cited:
            yield Finding(
                "unused-source",
                ctx.file,
                ("sources", key),
                f"source `{key}` is never cited; cite it as [@{key}] or remove it",
                key,
                key=True,
            )


def source_findings(entry: Entry[Source]) -> Iterator[Finding]:
    """A source missing what readers need to find it, or with no archived copy."""
    source = entry.item
    missing = [
        name
        for name, value in (
            ("url", source.url),
            ("publisher", source.publisher),
            ("date (`published` or `accessed`)", source.published or source.accessed),
        )
        if value is None
    ]
    if missing:
        yield Finding(
            "incomplete-source",
            entry.file,
            entry.loc,
            f"source `{entry.key}` has no {one_of(missing)}; "
            + (
                "readers cannot check it until it is identified"
                if source.url is None
                else "add it so readers can find the version you read"
            ),
            entry.key,
            key=True,
        )
    if source.url is not None and source.archive_url is None:
        yield Finding(
            "no-archive",
            entry.file,
            entry.loc,
            f"source `{entry.key}` has no archived copy; save it (web.archive.org/save) "
            "and add `archive_url`",
            entry.key,
            key=True,
        )


def local_sources(ctx: Context) -> Iterator[Finding]:
    """The source rules on the sources defined in the claim file."""
    for key, source in ctx.page.claim.sources.items():
        yield from source_findings(Entry(key, source, ctx.file, ("sources", key)))


# --- Figures -------------------------------------------------------------------------------


def figure_findings(entry: Entry[Figure]) -> Iterator[Finding]:
    """A figure with a value and no source."""
    if entry.item.value is not None and entry.item.source is None:
        yield Finding(
            "unsourced-figure",
            entry.file,
            entry.loc,
            f"figure `{entry.key}` has no source; add `source:` with the key of the "
            "document the value comes from",
            entry.key,
            key=True,
        )


def local_figures(ctx: Context) -> Iterator[Finding]:
    """The figure rules on the figures defined in the claim file."""
    for name, item in ctx.page.claim.figures.items():
        yield from figure_findings(Entry(name, item, ctx.file, ("figures", name)))


def significant_digits(text: str, *, exact: bool = False) -> int | None:
    """Significant digits of a number as written: `36.2` → 3, `0.176` → 3, `36200000` → 3
    (trailing zeros of a whole number are not counted unless `exact`), `63,892` → 5."""
    match = re.search(r"\d[\d,]*(?:\.\d+)?|\.\d+", text)
    if match is None:
        return None
    number = match[0].replace(",", "")
    whole, _, decimals = number.partition(".")
    digits = (whole + decimals).lstrip("0")
    if not decimals and not exact:
        digits = digits.rstrip("0")
    return max(len(digits), 1)


@functools.lru_cache(maxsize=4096)
def _formula(text: str) -> fig.Formula | None:
    """A formula of * and / only, parsed once; None for sums and differences."""
    formula = fig.parse_formula(text)
    if any(isinstance(node, (ast.Add, ast.Sub)) for node in ast.walk(formula.tree)):
        return None
    return formula


def input_precision(
    name: str, figures: Mapping[str, Figure], seen: frozenset[str] = frozenset()
) -> int | None:
    """The significant digits a figure's value supports: its display's (`36.2 million` → 3),
    or all digits of its value; for a formula of * and /, its least precise input (constants
    are exact). None when it cannot tell, and for sums and differences, whose precision is
    not a count of significant digits."""
    item = figures.get(name)
    if item is None or name in seen:
        return None
    if item.formula is None:
        if item.display is not None:
            return significant_digits(item.display)
        if item.value is None:
            return None
        return significant_digits(fig.plain(fig.to_decimal(item.value)), exact=True)
    formula = _formula(item.formula)
    if formula is None:
        return None
    known = [input_precision(ref, figures, seen | {name}) for ref in formula.names]
    found = [k for k in known if k is not None]
    return min(found) if found else None


def false_precision(ctx: Context) -> Iterator[Finding]:
    """A formula shown in prose with more significant digits than its inputs support."""
    figures = {f.name: ctx.registry.figures[f.name].item for f in ctx.page.figures if f.shared}
    figures.update(ctx.page.claim.figures)
    values = _values(ctx)
    for loc, text, _ in prose_fields(ctx.page):
        if "{" not in text:
            continue
        for start, _end, token in prose.token_spans(text):
            if not isinstance(token, FigureRef) or token.name not in figures:
                continue
            item = figures[token.name]
            if item.formula is None or token.name not in values:
                continue
            try:
                shown = (
                    fig.format_value(values[token.name], token.spec)
                    if token.spec
                    else fig.plain(values[token.name])
                )
            except fig.FigureError:
                continue
            digits, supported = significant_digits(shown), input_precision(token.name, figures)
            if digits is None or supported is None or digits <= supported:
                continue
            yield Finding(
                "false-precision",
                ctx.file,
                loc,
                f"{{{token.name}{':' + token.spec if token.spec else ''}}} shows {shown} "
                f"({digits} significant digits) but its inputs have only {supported}; "
                "show fewer decimals",
                token.name,
                at=locate_in_field(ctx.file, loc, text, start),
            )


# --- Numbers typed into prose --------------------------------------------------------------

_NUMBER = re.compile(
    # (a lookahead first, so the regex engine skips to where a number can start rather than
    # trying the lookbehinds at every character: half the time)
    r"(?=[$€£¥.\d])(?<![\w.,:/\\$€£¥-])(?<![A-Za-z]-)(?<!\d[-–])"
    r"(?:[$€£¥]\s?)?(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?P<percent>\s?%|\s(?:percent|per cent)\b)?"
    r"(?P<scale>\s(?:thousand|million|billion|trillion)\b)?"
    r"(?![\w%]|[.,]\d|:\d)"
)
_MASK = re.compile(
    r"\]\([^)\s]*\)|<https?://[^>]*>|https?://\S+|`[^`]*`|&#?\w+;|\[\d+(?:[,–-]\s?\d+)*\]"
)
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_BEFORE_REFERENCE = re.compile(
    r"(?:\b(?:sections?|chapters?|parts?|steps?|pages?|pp?\.|articles?|paragraphs?|clauses?|"
    r"titles?|rules?|no\.|nos\.|numbers?|figures?|tables?|questions?|districts?|wards?|"
    r"precincts?|routes?|highways?|interstates?|flights?|rooms?|bills?|amendments?|"
    r"propositions?|prop\.|measures?|grades?|phases?|seasons?|episodes?|vol\.|volumes?|"
    r"versions?)|§§?|#)\s*"
    r"(?:[\dA-Za-z.()]+\s*(?:,|and|or|to|through|-|–)\s*)*$",
    re.IGNORECASE,
)
_BEFORE_DAY = re.compile(rf"\b(?:{_MONTHS})\.?\s+$", re.IGNORECASE)
_AFTER_DAY = re.compile(rf"^\s+(?:{_MONTHS})\b", re.IGNORECASE)
_LIST_MARKER = re.compile(r"(?:^|\n)[ \t]*$")
_DIGIT = re.compile(r"\d")
_SCALES = {"thousand": 3, "million": 6, "billion": 9, "trillion": 12}


def typed_numbers(text: str) -> Iterator[re.Match[str]]:
    """The numbers typed into prose: not in figure references or citations, not years
    (1900-2100 alone), section or rule numbers, days of dates, list markers, ordinals,
    codes such as `COVID-19`, nor inside links and code."""
    if _DIGIT.search(text) is None:
        return
    pieces, last = [], 0
    for start, end, _ in prose.token_spans(text):
        pieces += [text[last:start], " " * (end - start)]
        last = end
    flat = "".join([*pieces, text[last:]])
    flat = _MASK.sub(lambda m: " " * len(m[0]), flat)
    for match in _NUMBER.finditer(flat):
        number = match["number"]
        # the words just before and after are enough to tell a reference, a date or a list
        before = flat[max(0, match.start() - 80) : match.start()]
        after = flat[match.end() : match.end() + 20]
        plain_year = (
            re.fullmatch(r"\d{4}", number) and 1900 <= int(number) <= 2100 and not match["percent"]
        )
        if plain_year and not match["scale"]:
            continue
        if _BEFORE_REFERENCE.search(before) or _BEFORE_DAY.search(before):
            continue
        if re.fullmatch(r"\d{1,2}", number) and _AFTER_DAY.match(after):
            continue
        if _LIST_MARKER.search(before) and re.match(r"[.)]\s", after):
            continue
        yield match


def typed_value(match: re.Match[str]) -> tuple[Decimal, Decimal, str]:
    """A typed number's value, the step its last digit stands for (0.01 in `36.21`,
    0.0001 in `0.18%`, 100,000 in `36.2 million`) and the format that shows a figure the
    same way (`.2%`, `,`...)."""
    number = match["number"].replace(",", "")
    places = len(number.partition(".")[2])
    value = Decimal(number)
    if match["percent"]:
        return value / 100, Decimal(1).scaleb(-places - 2), f".{places}%"
    if match["scale"]:
        exponent = _SCALES[match["scale"].strip()]
        return value.scaleb(exponent), Decimal(1).scaleb(exponent - places), ""
    spec = ("," if "," in match["number"] else "") + (f".{places}f" if places else "")
    return value, Decimal(1).scaleb(-places), spec


def untraced_number(ctx: Context) -> Iterator[Finding]:
    """A number typed into prose rather than shown from a figure."""
    for loc, text, _ in prose_fields(ctx.page):
        for match in typed_numbers(text):
            subject = " ".join(match[0].split())
            value, step, spec = typed_value(match)
            message = f"`{subject}` is typed into prose; no figure produces it"
            close = significant_digits(match["number"], exact=True) or 0
            same = (
                sorted(
                    {f.name for f in ctx.page.figures if abs(f.value - value) * 2 <= step}
                    | {*ctx.registry.near(value, step)}
                )
                if close >= 2
                else []
            )
            if same:
                ref = f"{{{same[0]}{':' + spec if spec else ''}}}"
                message += f"; it matches figure `{same[0]}`: write {ref}"
            else:
                message += "; add it to `figures` with its source and write {name}"
            yield Finding(
                "untraced-number",
                ctx.file,
                loc,
                message,
                subject,
                at=locate_in_field(ctx.file, loc, text, match.start("number")),
            )


# --- Dates ---------------------------------------------------------------------------------


_SOURCE_DATES = ("published", "accessed", "archived")


def latest_date(claim: Claim) -> dt.date:
    """The latest of the claim's dates that the rules compare with today (`dates`)."""
    found = [claim.checked_on, *(c.date for c in claim.corrections)]
    if claim.appeared and claim.appeared.date:
        found.append(claim.appeared.date)
    for source in claim.sources.values():
        found += [d for name in _SOURCE_DATES if (d := getattr(source, name)) is not None]
    return max(found)


def dated(checked_on: dt.date, latest: dt.date, site: Site, today: dt.date) -> bool:
    """Whether today's date changes a claim's findings: one of its dates is after today
    (`future-date`), or its check is stale (`stale-check`); on every day neither holds, no
    rule's finding depends on the date."""
    return latest > today or (today - checked_on).days > site.stale_after_days


def _source_dates(entry: Entry[Source], today: dt.date) -> Iterator[Finding]:
    source = entry.item
    for name in _SOURCE_DATES:
        value = getattr(source, name)
        if value is not None and value > today:
            yield _future(entry.file, (*entry.loc, name), value, today)
    pairs = (("published", "accessed"), ("published", "archived"))
    for earlier, later in pairs:
        first, second = getattr(source, earlier), getattr(source, later)
        if first is not None and second is not None and first > second:
            yield Finding(
                "date-order",
                entry.file,
                (*entry.loc, earlier),
                f"source `{entry.key}` is {earlier} {first} but {later} {second}, before that",
                field_path((*entry.loc, earlier)),
            )


def _future(file: Located, loc: tuple[str | int, ...], value: dt.date, today: dt.date) -> Finding:
    return Finding(
        "future-date",
        file,
        loc,
        f"{value} is in the future (today is {today}); is the year right?",
        field_path(loc),
    )


def dates(ctx: Context) -> Iterator[Finding]:
    """Dates in the future or out of order: the check, the claim's appearance, corrections
    and the claim's own sources."""
    claim, file, today = ctx.page.claim, ctx.file, ctx.today
    if claim.checked_on > today:
        yield _future(file, ("checked_on",), claim.checked_on, today)
    if claim.appeared and claim.appeared.date:
        if claim.appeared.date > today:
            yield _future(file, ("appeared", "date"), claim.appeared.date, today)
        elif claim.appeared.date > claim.checked_on:
            yield Finding(
                "date-order",
                file,
                ("appeared", "date"),
                f"the claim appeared on {claim.appeared.date}, after it was checked "
                f"({claim.checked_on})",
                "appeared.date",
            )
    previous: dt.date | None = None
    for i, correction in enumerate(claim.corrections):
        loc: tuple[str | int, ...] = ("corrections", i, "date")
        if correction.date > today:
            yield _future(file, loc, correction.date, today)
        if correction.date < claim.checked_on:
            yield Finding(
                "date-order",
                file,
                loc,
                f"{correction.kind} dated {correction.date}, before the check on "
                f"{claim.checked_on}; a change after the check needs a later date "
                "(or update `checked_on` if the facts were checked again)",
                field_path(loc),
            )
        elif previous is not None and correction.date < previous:
            yield Finding(
                "date-order",
                file,
                loc,
                f"{correction.kind} dated {correction.date} comes after one dated "
                f"{previous}; list corrections oldest first",
                field_path(loc),
            )
        previous = correction.date
    for key, source in claim.sources.items():
        entry = Entry(key, source, file, ("sources", key))
        yield from _source_dates(entry, today)
        if source.published and source.published > claim.checked_on:
            yield Finding(
                "date-order",
                file,
                ("sources", key, "published"),
                f"source `{key}` was published {source.published}, after the check on "
                f"{claim.checked_on}",
                f"sources.{key}.published",
            )


def stale_check(ctx: Context) -> Iterator[Finding]:
    """A check older than the site's staleness limit."""
    age = (ctx.today - ctx.page.claim.checked_on).days
    if age > ctx.site.stale_after_days:
        yield Finding(
            "stale-check",
            ctx.file,
            ("checked_on",),
            f"checked {age} days ago, more than stale_after_days ({ctx.site.stale_after_days}) "
            "in site.yaml; check the facts again and update `checked_on`",
            "checked_on",
        )


# --- The article's shape -------------------------------------------------------------------


def not_a_question(ctx: Context) -> Iterator[Finding]:
    """The question or a follow-up that does not end with a question mark."""
    claim = ctx.page.claim
    items: list[tuple[tuple[str | int, ...], str]] = [(("question",), claim.question)]
    items += [(("follow_up", i), q) for i, q in enumerate(claim.follow_up)]
    for loc, text in items:
        if not text.rstrip().endswith(("?", "？")):
            what = "the question" if loc == ("question",) else "this follow-up"
            yield Finding(
                "not-a-question",
                ctx.file,
                loc,
                f"{what} does not end with `?`; ask it as a question",
                field_path(loc),
            )


def uncited_summary(ctx: Context) -> Iterator[Finding]:
    """An executive summary that cites nothing."""
    if not any(isinstance(t, Cite) for _, _, t in prose.token_spans(ctx.page.claim.summary)):
        yield Finding(
            "uncited-summary",
            ctx.file,
            ("summary",),
            "the summary cites no source; cite the sources of its facts as [@key]",
            "summary",
        )


def no_bottom_line(ctx: Context) -> Iterator[Finding]:
    """A last section whose heading has none of the site's bottom-line words."""
    words = ctx.site.bottom_line
    last = len(ctx.page.claim.sections) - 1
    heading = ctx.page.claim.sections[last].heading.casefold()
    if words and not any(word.casefold() in heading for word in words):
        expected = " or ".join(f"`{w}`" for w in words)
        yield Finding(
            "no-bottom-line",
            ctx.file,
            ("sections", last, "heading"),
            f"the last section is the bottom line; its heading should say {expected} "
            "(site.yaml `bottom_line` sets the words)",
            f"sections[{last}].heading",
        )


TODO = re.compile(r"\bTODO\b")
"""The placeholder `claimpress new` writes in every field the writer must fill in."""


def placeholder(ctx: Context) -> Iterator[Finding]:
    """Prose that still holds a placeholder for the writer to replace."""
    for loc, text, _ in prose_fields(ctx.page):
        if "TODO" in text and (match := TODO.search(text)):  # (`in` is much quicker)
            yield Finding(
                "placeholder",
                ctx.file,
                loc,
                "`TODO` is still here; write the text it stands for",
                field_path(loc),
                at=locate_in_field(ctx.file, loc, text, match.start()),
            )


# --- Approvals -----------------------------------------------------------------------------


def approval_rules(ctx: Context) -> Iterator[Finding]:
    """A published claim whose content nobody approved, or edited with no correction."""
    claim, approval = ctx.page.claim, ctx.approval
    if claim.status != "published" or ctx.approved:
        return
    if approval is not None:
        approved = snapshot_claim(approval)
        if approved is not None and len(claim.corrections) <= len(approved.corrections):
            yield Finding(
                "unapproved-edit",
                ctx.file,
                ("corrections",) if claim.corrections else ("status",),
                f"edited since {approval.by} approved it on {approval.when} with no new "
                "correction or update; add one under `corrections:` saying what changed",
                "corrections",
                key=True,
            )
    if not ctx.site.require_approval:
        return
    if approval is None:
        message = (
            "published but never approved; the site leaves it out until "
            f"`claimpress approve {ctx.page.slug} --by NAME`"
        )
    else:
        message = (
            f"edited since {approval.by} approved it on {approval.when}; the site keeps "
            "the approved version until `claimpress review` and `claimpress approve`"
        )
    yield Finding("needs-approval", ctx.file, ("status",), message, "status")


CLAIM_RULES: tuple[ClaimRule, ...] = (
    unused_source,
    local_sources,
    local_figures,
    untraced_number,
    false_precision,
    dates,
    stale_check,
    not_a_question,
    uncited_summary,
    no_bottom_line,
    placeholder,
    approval_rules,
)
"""The rules run on every claim that resolved, in this order."""


def lint_claim(ctx: Context) -> list[Problem]:
    """Every rule on one claim, silenced by its `lint.ignore` entries; ignores with no
    reason, an unknown rule or nothing to silence are findings themselves."""
    findings = [finding for rule in CLAIM_RULES for finding in rule(ctx)]
    lint = ctx.page.claim.lint
    ignores = lint.ignore if lint else []
    used = [False] * len(ignores)
    problems: list[Problem] = []
    for finding in findings:
        silenced = False
        for i, ignore in enumerate(ignores):
            matches = ignore.match is None or ignore.match == finding.subject
            if ignore.reason and ignore.rule == finding.rule and matches:
                used[i] = silenced = True
        if not silenced:
            problems.append(finding.problem())
    for i, ignore in enumerate(ignores):
        loc = ("lint", "ignore", i)
        if ignore.rule not in RULES:
            message = f"unknown rule `{ignore.rule}`; the rules are: {', '.join(sorted(RULES))}"
        elif not ignore.reason:
            message = "an ignore needs a `reason` saying why the finding does not apply"
        elif not used[i]:
            about = f" about `{ignore.match}`" if ignore.match else ""
            message = f"this ignore silences nothing: the claim has no {ignore.rule} finding{about}"
        else:
            continue
        problems.append(Finding("lint-ignore", ctx.file, loc, message).problem())
    return problems


def lint_registry(registry: Registry, today: dt.date) -> list[Problem]:
    """The source, figure and date rules on the shared registry (not silenceable: fix the
    shared entry)."""
    findings: list[Finding] = []
    for entry in registry.sources.values():
        findings += source_findings(entry)
        findings += _source_dates(entry, today)
    for figure_entry in registry.figures.values():
        findings += figure_findings(figure_entry)
    return [f.problem() for f in findings]


# --- Helpers -------------------------------------------------------------------------------


def prose_fields(page: Page) -> Iterator[tuple[tuple[str | int, ...], str, bool]]:
    """Every field of prose a reader sees, with whether it is parsed for citations and
    figures (the question and follow-ups are plain text)."""
    claim = page.claim
    yield ("question",), claim.question, False
    yield ("summary",), claim.summary, True
    for i, section in enumerate(claim.sections):
        yield ("sections", i, "heading"), section.heading, True
        yield ("sections", i, "body"), section.body, True
    for i, text in enumerate(claim.limitations):
        yield ("limitations", i), text, True
    for i, correction in enumerate(claim.corrections):
        yield ("corrections", i, "note"), correction.note, True
    for i, question in enumerate(claim.follow_up):
        yield ("follow_up", i), question, False


def _values(ctx: Context) -> Mapping[str, Decimal]:
    values = {f.name: f.value for f in ctx.page.figures}
    return ChainMap(values, ctx.registry.values)  # type: ignore[arg-type]
