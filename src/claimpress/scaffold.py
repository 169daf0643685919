"""`claimpress new`: a new draft claim file with a commented skeleton of every field.

The file is a draft that `claimpress check` accepts (placeholders are warnings for the
reviewer, never errors), carries the editor's schema line, and never replaces a file.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from pathlib import Path

from anyascii import anyascii
from pydantic import TypeAdapter, ValidationError

from . import emit
from .load import CLAIMS_DIR, SITE_FILE, parse_model
from .model import MAX_SLUG, WINDOWS_DEVICES, Claim, Line, slug_problem
from .project import Project
from .resolve import OpenQuestion, link_follow_ups, open_questions, question_key
from .schema import schema_file, schema_json

PLACEHOLDER = "TODO"
"""Starts every placeholder text `new` writes, so review can flag what is left to fill in."""
SCHEMA_DIR = "schema"
CLAIM_SCHEMA = f"../{SCHEMA_DIR}/{schema_file('claim')}"
"""The claim schema as claim files name it, relative to claims/."""

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


class ScaffoldError(ValueError):
    """A claim cannot be started as asked; the message says why and what to do."""


def slugify(question: str) -> str:
    """A slug from a question: ASCII (transliterated), lowercase, hyphens, at most MAX_SLUG
    characters cut at a word boundary."""
    # Apostrophes join their word: "café's" is `cafes`, not `cafe-s`.
    ascii_text = anyascii(question).lower().replace("'", "")
    words = _NOT_SLUG.sub(" ", ascii_text).split()
    slug = ""
    for word in words:
        longer = f"{slug}-{word}" if slug else word
        if len(longer) > MAX_SLUG:
            break
        slug = longer
    if not slug and words:  # one word longer than a whole slug
        slug = words[0][:MAX_SLUG]
    if slug in WINDOWS_DEVICES:  # `con.yaml` cannot exist on Windows
        slug += "-claim"
    return slug


def skeleton(question: str, topics: Sequence[str], today: dt.date) -> str:
    """The text of a new draft claim: every field, optional ones commented out."""
    if topics:
        topics_yaml = "topics:\n" + "".join(f"  - {emit.scalar(t)}\n" for t in topics)
    else:
        topics_yaml = "topics: []  # such as [NCMEC, CyberTipline]\n"
    return f"""\
{emit.SCHEMA_COMMENT.format(schema=CLAIM_SCHEMA)}\
# One fact-check: the question, answered from sourced figures. Replace every {PLACEHOLDER}.
# Uncomment the fields you need, then run `claimpress check`. README.md explains them all.
question: {emit.scalar(question)}
checked_on: {today.isoformat()}  # the date you checked the facts (YYYY-MM-DD)
status: draft  # draft | review | published: only published claims go on the site
{topics_yaml}\
# verdict: Accurate  # a rating from rating_scale in site.yaml
# claimant: Who made the claim being checked
# claimant_type: organization  # when the claimant is not a person
# appeared: {{url: https://example.org/post, date: {today.isoformat()}, where: X (Twitter)}}
# author: Your name
# editor: Your editor's name

# The executive summary: one paragraph of Markdown. Cite a source as [@key] or [@a; @b].
# Show a figure as {{name}} or formatted: {{name:,}} -> 63,892, {{name:.2%}} -> 0.18%.
summary: >-
  {PLACEHOLDER}: answer the question in one paragraph.

# The numbered sections, one paragraph each; the last is the bottom line.
sections:
  - heading: {PLACEHOLDER} heading of the first section
    body: >-
      {PLACEHOLDER}: the evidence, with its citations.
  - heading: Bottom line
    body: >-
      {PLACEHOLDER}: the answer, and how else the evidence could be read.

# What the evidence cannot show (Markdown).
# limitations:
#   - No public source ties reports to prosecutions [@key].

# Follow-up questions ("Want to dive deeper?"), linked to the claim that answers each.
# Those no claim answers yet are listed on the open-questions page.
# follow_up:
#   - How many reports led to arrests?

# Named numbers: a sourced value, or a formula over other figures (+ - * / and parentheses).
# Figures and sources used by many claims can live once in figures/*.yaml and sources/*.yaml.
# figures:
#   reports_2023: {{value: 36200000, display: 36.2 million, source: report-2023}}
#   urgent_2023: {{value: 63892, source: report-2023}}
#   urgent_share: {{formula: urgent_2023 / reports_2023}}

# The documents cited in prose as [@key].
# sources:
#   report-2023:
#     title: CyberTipline 2023 Report
#     publisher: National Center for Missing & Exploited Children
#     published: 2024-05-01
#     url: https://www.missingkids.org/cybertiplinedata
#     accessed: {today.isoformat()}
#     archive_url: https://web.archive.org/web/2026/https://www.missingkids.org/cybertiplinedata

# Corrections and updates after publication, oldest first.
# corrections:
#   - {{date: {today.isoformat()}, kind: correction, note: What changed and why.}}
"""


def open_follow_up(project: Project, wanted: str) -> tuple[str, list[str]]:
    """An open follow-up chosen by its number in `follow_ups()` or by its text (case,
    punctuation, spacing ignored): its question and the topics of the claims asking it."""
    questions = _open_questions(project)
    chosen = None
    if wanted.strip().isdigit():
        number = int(wanted)
        if not 1 <= number <= len(questions):
            raise ScaffoldError(
                f"no open follow-up number {number}; there are {len(questions)} "
                "(list them with `claimpress new --list-follow-ups`)"
            )
        chosen = questions[number - 1]
    else:
        key = question_key(wanted)
        chosen = next((q for q in questions if question_key(q.question) == key), None)
        if chosen is None:
            answered = next((p for p in project.pages if p.facts.question_key == key), None)
            if answered is not None:
                raise ScaffoldError(
                    f"{project.show(answered.facts.rel)} already answers this question"
                )
            raise ScaffoldError(
                f"no claim asks the follow-up {wanted!r}; "
                "list the open ones with `claimpress new --list-follow-ups`"
            )
    topics: list[str] = []
    for page in chosen.asked_by:
        topics += [t for t in page.facts.topics if t not in topics]
    return chosen.question, topics


def follow_ups(project: Project) -> list[str]:
    """The open follow-ups, numbered as `new --from-follow-up N` takes them, with askers."""
    return [
        f"{n}. {q.question}\n   asked by "
        + ", ".join(project.show(p.facts.rel) for p in q.asked_by)
        for n, q in enumerate(_open_questions(project), start=1)
    ]


def _open_questions(project: Project) -> list[OpenQuestion]:
    """The project's open follow-ups, told from what its summaries keep of each page
    (`Page.facts`): no page is loaded."""
    return open_questions(link_follow_ups(project.without_locations().pages))


def new_claim(
    root: Path,
    question: str,
    *,
    topics: Sequence[str] = (),
    slug: str | None = None,
    today: dt.date | None = None,
) -> Path:
    """Write `claims/<slug>.yaml` under `root`, a draft with the question and a commented
    skeleton; raises ScaffoldError (writing nothing) when it cannot."""
    if not (root / SITE_FILE).is_file():
        raise ScaffoldError(
            f"no {SITE_FILE} in {root}; run claimpress in a project folder "
            "(one with site.yaml and claims/), or name it with -C DIR"
        )
    line = TypeAdapter(Line)
    for what, value in [("question", question), *(("--topic", t) for t in topics)]:
        try:
            line.validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ScaffoldError(f"{what} {json.dumps(value)}: {reason}") from None
    if slug is None:
        slug = slugify(question)
        if not slug:
            raise ScaffoldError(f"cannot make a file name from {question!r}; give one with --slug")
    elif problem := slug_problem(slug):
        raise ScaffoldError(f"--slug {slug}: {problem.replace('file name', 'the slug')}")
    claims = root / CLAIMS_DIR
    for existing in (claims / f"{slug}.yaml", claims / f"{slug}.yml"):
        if existing.exists():
            raise ScaffoldError(
                f"{CLAIMS_DIR}/{existing.name} already exists; edit it, or choose another --slug"
            )
    text = skeleton(question, topics, today or dt.date.today())
    claim, _, problems = parse_model(text.encode(), f"{CLAIMS_DIR}/{slug}.yaml", Claim)
    if claim is None:  # our template is wrong, never the user's input
        raise AssertionError("\n".join(map(str, problems)))
    claims.mkdir(exist_ok=True)
    path = claims / f"{slug}.yaml"
    with open(path, "x", encoding="utf-8") as handle:
        handle.write(text)
    write_schema(root)
    return path


def write_schema(root: Path) -> None:
    """Put the claim schema where claim files point editors (`schema/claim.schema.json`),
    unless the project already has one there."""
    path = root / SCHEMA_DIR / schema_file("claim")
    if path.exists():
        return
    path.parent.mkdir(exist_ok=True)
    path.write_text(schema_json("claim"), encoding="utf-8")
