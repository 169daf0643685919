"""The review bundle: each claim an editor must read, as it will be published, beside its
checklist of findings, its figures with their derivations, its citations, and what changed
since the last approval.

`claimpress review` writes the bundle into `review/` atomically, like the site:

    review/index.html                  every claim to review, with its counts
    review/claims/<slug>/index.html    the page exactly as it will be published (DRAFT)
    review/claims/<slug>/review.html   the review sheet, with the page beside it
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup, escape

from . import figures as fig
from . import prose
from .approvals import Approval, approved_page, content_hash, shared_files
from .lint import prose_fields
from .load import field_path, no_claim, slug_of
from .problems import Problem
from .project import Project
from .prose import Cite, FigureRef
from .render import Renderer
from .resolve import Page
from .site import Plan, check_out_dir, static_files, write_site

REVIEW_DIR = "review"
REVIEW_CSS = "review.css"


class ReviewError(Exception):
    """The review cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class Item:
    """One finding on the checklist, with the part of the page it concerns."""

    problem: Problem
    place: str
    """Where on the page: `Summary`, `Section 2`, `Source 3`..."""
    anchor: str
    """The fragment of the page to show: `#section-2`."""
    excerpt: str = ""
    """The sentence of the claim file the finding is about, when it names one."""


@dataclass(frozen=True)
class FigureRow:
    """One figure as the reviewer checks it."""

    name: str
    shown: str
    source: str
    """`[1] ncmec-2023`, or the key of a source the page does not cite, or empty."""
    formula: str
    derivation: tuple[str, ...]
    """`63,892 ÷ 36.2 million = 0.176%`, once per precision the prose shows."""
    note: str
    shared: bool
    used: bool


@dataclass(frozen=True)
class CitationRow:
    """A source of the claim and where the page cites it."""

    number: int | None
    key: str
    title: str
    publisher: str
    url: str
    archive_url: str
    shared: bool
    places: tuple[str, ...]


@dataclass(frozen=True)
class Sheet:
    """Everything the review sheet of one claim shows."""

    page: Page
    path: str
    """The claim file, as messages name it (`Project.show`)."""
    state: str
    """`approved`, `changed since approval` or `never approved`."""
    approval: Approval | None
    items: tuple[Item, ...]
    figures: tuple[FigureRow, ...]
    citations: tuple[CitationRow, ...]
    diff: Markup | None
    """The rendered text since the last approval, word by word, with <ins> and <del>."""

    @property
    def errors(self) -> int:
        """How many findings are errors."""
        return sum(1 for i in self.items if i.problem.severity == "error")

    @property
    def warnings(self) -> int:
        """How many findings are warnings."""
        return len(self.items) - self.errors


@dataclass(frozen=True)
class Broken:
    """A claim that cannot be shown because it has errors."""

    slug: str
    path: str
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class Bundle:
    """The review bundle, planned."""

    sheets: tuple[Sheet, ...]
    broken: tuple[Broken, ...]
    plan: Plan


def to_review(project: Project, names: list[str]) -> tuple[list[Page], list[Broken]]:
    """The claims to review: the ones named, or every draft, every claim in review and every
    published claim whose content has no matching approval. Told from the claims' summaries:
    only the pages chosen are loaded, when first read (`Project.without_locations`)."""
    wanted: list[str] = []
    for name in names:
        slug = slug_of(name)
        if slug not in project.slugs:
            raise ReviewError(no_claim(name, project.slugs))
        wanted.append(slug)
    pages = {p.slug: p for p in project.pages}
    chosen: list[Page] = []
    broken: list[Broken] = []
    for summary in project.summaries:
        if summary.slug is None or (wanted and summary.slug not in wanted):
            continue
        page = pages.get(summary.slug)
        if page is None:
            path = project.show(summary.rel)
            broken.append(Broken(summary.slug, path, project.problems_in(path)))
            continue
        current = state(project, page)
        if (
            wanted
            or page.facts.status != "published"
            or current == "changed since approval"
            or (current == "never approved" and project.site.require_approval)
        ):
            chosen.append(page)
    return chosen, broken


def state(project: Project, page: Page) -> str:
    """Whether the claim's current content is the approved one."""
    approval = project.approvals.get(page.slug)
    if approval is None:
        return "never approved"
    # Worked out as the claim was gathered, for each claim with an approval.
    current = project.content_hashes.get(page.facts.rel) or content_hash(page, project.registry)
    if approval.content_hash == current:
        return "approved"
    return "changed since approval"


def plan_review(project: Project, names: list[str]) -> Bundle:
    """Render the review bundle in memory."""
    project = project.without_locations()  # (findings are located as they are gathered)
    renderer = Renderer(project.root, project.site)
    pages, broken = to_review(project, names)
    plan = Plan()
    sheets = []
    linked = {p.slug: p for p in project.published(drafts=True)}
    for page in pages:
        page = linked.get(page.slug, page)
        sheet = make_sheet(project, renderer, page)
        sheets.append(sheet)
        base = f"claims/{page.slug}/"
        plan.add(base + "index.html", renderer.claim_html(page, draft=True), sheet.path)
        plan.add(
            base + "review.html",
            renderer.render("review/sheet.html", sheet=sheet, root="../../"),
            sheet.path,
        )
    plan.add(
        "index.html",
        renderer.render("review/index.html", sheets=sheets, broken=broken, root=""),
        "the review index",
    )
    for rel, path in static_files(project.root):
        plan.add("static/" + rel, path.read_bytes(), str(path))
    css = renderer.env.loader.get_source(renderer.env, f"review/{REVIEW_CSS}")[0]  # type: ignore[union-attr]
    plan.add(f"static/{REVIEW_CSS}", css, "the review stylesheet")
    return Bundle(tuple(sheets), tuple(broken), plan)


def write_review(
    project: Project, out: Path, names: list[str], waiting: Callable[[], None] | None = None
) -> Bundle:
    """Plan the bundle, then replace `out` with it in one step (`waiting` is told when
    another run writing `out` holds it)."""
    target = check_out_dir(out, project.root)
    bundle = plan_review(project, names)
    write_site(bundle.plan, target, waiting=waiting)
    return bundle


def make_sheet(project: Project, renderer: Renderer, page: Page) -> Sheet:
    """The review sheet of one resolved claim."""
    approval = project.approvals.get(page.slug)
    current = state(project, page)
    diff = None
    if approval is not None and current != "approved":
        before, _ = approved_page(approval, project.site)
        if before is not None:
            diff = word_diff(renderer.claim_text(before), renderer.claim_text(page))
    path = project.show(page.file.rel)
    return Sheet(
        page,
        path,
        current,
        approval,
        tuple(_items(project, page, path)),
        tuple(_figures(page)),
        tuple(_citations(page)),
        diff,
    )


_TOKENS = re.compile(r"\s+|[^\s]+")


def word_diff(before: str, after: str) -> Markup:
    """The change from `before` to `after`, word by word: removed words in <del>, added words
    in <ins>, everything escaped."""
    a, b = _TOKENS.findall(before), _TOKENS.findall(after)
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append(str(escape("".join(a[i1:i2]))))
            continue
        if i2 > i1:
            out.append(f"<del>{escape(''.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{escape(''.join(b[j1:j2]))}</ins>")
    return Markup("".join(out))


def place(page: Page, field: str) -> tuple[str, str]:
    """The part of the page a field is shown in, and its fragment."""
    head = re.split(r"[.\[]", field, maxsplit=1)[0]
    if head == "summary":
        return "Summary", "#summary-heading"
    if head == "sections":
        index = re.search(r"\[(\d+)\]", field)
        section = int(index[1]) + 1 if index else 1
        return f"Section {section}", f"#section-{section}"
    if head == "limitations":
        return "Limitations", "#limitations-heading"
    if head == "follow_up":
        return "Follow-ups", "#follow-up-heading"
    if head == "sources":
        key = field.split(".")[1] if "." in field else ""
        cited = next((s.number for s in page.sources if s.key == key), None)
        return (f"Source {cited}", f"#source-{cited}") if cited else ("Sources", "#main")
    if head == "corrections":
        return "Corrections", "#main"
    return "Page", "#main"


def _items(project: Project, page: Page, path: str) -> list[Item]:
    """The findings on the page whose file messages call `path`, and those on the shared
    entries it uses."""
    used = {s.key for s in page.sources if s.shared} | {f.name for f in page.figures if f.shared}
    shared = {project.show(rel) for rel in shared_files(project.registry)} - {path}
    items = [
        Item(problem, *place(page, problem.field), excerpt(page, problem, path))
        for problem in project.problems_in(path)
    ]
    for key in used:
        number = next((s.number for s in page.sources if s.key == key), None)
        where, anchor = (
            (f"Source {number}", f"#source-{number}") if number else ("Figures", "#main")
        )
        for file in shared:
            items += [Item(p, where, anchor, "") for p in project.problems_in(file, key)]
    return sorted(items, key=lambda item: item.problem)  # as `project.problems` are


_SUBJECT = re.compile(r"^`([^`]+)`|^\{([^}]+)\}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def excerpt(page: Page, problem: Problem, path: str) -> str:
    """The sentence of the field that holds a finding's number or figure, as written, when
    the finding is on the page's file (which messages call `path`)."""
    subject = _SUBJECT.match(problem.message)
    if subject is None or problem.path != path:
        return ""
    value: object = page.claim
    for name, index in re.findall(r"(\w+)|\[(\d+)\]", problem.field):
        try:
            value = value[int(index)] if index else getattr(value, name)  # type: ignore[index]
        except (AttributeError, IndexError, TypeError):
            return ""
    if not isinstance(value, str):
        return ""
    needle = subject[1] or "{" + subject[2] + "}"
    for sentence in _SENTENCE.split(" ".join(value.split())):
        if needle in sentence:
            return sentence
    return ""


def _uses(page: Page) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Where the page shows each figure (its formats) and cites each source (its places)."""
    specs: dict[str, list[str]] = {}
    places: dict[str, list[str]] = {}
    for loc, text, parsed in prose_fields(page):
        if not parsed:
            continue
        where = place(page, field_path(loc))[0]
        for _, _, token in prose.token_spans(text):
            if isinstance(token, FigureRef):
                specs.setdefault(token.name, [])
                if token.spec not in specs[token.name]:
                    specs[token.name].append(token.spec or "")
            elif isinstance(token, Cite):
                for key in token.keys:
                    if where not in places.setdefault(key, []):
                        places[key].append(where)
    return specs, places


def _figures(page: Page) -> list[FigureRow]:
    specs, _ = _uses(page)
    numbers = {s.key: s.number for s in page.sources}
    rows = []
    for f in page.figures:
        shown = []
        for spec in specs.get(f.name, []):
            try:
                shown.append(fig.format_value(f.value, spec) if spec else f.shown)
            except fig.FigureError:
                continue
        results = list(dict.fromkeys(shown)) or [f.shown]
        derivation = tuple(f"{f.derivation} = {r}" for r in results) if f.derivation else ()
        source = ""
        if f.source:
            number = numbers.get(f.source)
            source = f"[{number}] {f.source}" if number else f.source
        rows.append(
            FigureRow(
                f.name,
                " / ".join(results),
                source,
                f.formula or "",
                derivation,
                f.note or "",
                f.shared,
                f.used,
            )
        )
    return rows


def _citations(page: Page) -> list[CitationRow]:
    _, places = _uses(page)
    rows = [
        CitationRow(
            s.number,
            s.key,
            s.source.title,
            s.source.publisher or "",
            s.source.url or "",
            s.source.archive_url or "",
            s.shared,
            tuple(places.get(s.key, [])),
        )
        for s in page.sources
    ]
    cited = {s.key for s in page.sources}
    rows += [
        CitationRow(
            None, k, s.title, s.publisher or "", s.url or "", s.archive_url or "", False, ()
        )
        for k, s in page.claim.sources.items()
        if k not in cited
    ]
    return rows


def summary_lines(bundle: Bundle) -> list[str]:
    """One line per claim for the terminal."""
    lines = []
    for sheet in bundle.sheets:
        status = sheet.page.claim.status
        lines.append(
            f"{sheet.page.slug}: {status}, {sheet.state}, "
            f"{sheet.errors} error(s), {sheet.warnings} warning(s)"
        )
    for broken in bundle.broken:
        lines.append(f"{broken.slug}: has errors; fix them to review it ({broken.path})")
    return lines
