"""The claim file and site settings as typed, frozen models: the single source of the schema.

Loading (`load.py`) validates YAML against these models; `claimpress schema` prints
their JSON Schema. No I/O here.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
"""A claim's slug, which is its file name: lowercase ASCII words joined by hyphens."""
MAX_SLUG = 80
KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
"""A source key as cited in prose: `[@ncmec-2023]`."""
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""A figure name as used in prose and formulas: `{urgent_share:.2%}`."""

Status = Literal["draft", "review", "published"]


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
"""Unicode categories Cc and Cs (tab and line breaks aside), and the two non-characters."""


def _text_characters(value: str) -> None:
    """Refuse characters no page, feed or terminal can carry (from YAML escapes such as "\\e")."""
    found = _CONTROL.search(value)
    if found:
        raise ValueError(f"contains the control character {found[0]!r}; remove it")


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be a single line (no line breaks)")
    if not value.strip():
        raise ValueError("must not be empty")
    _text_characters(value)
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    _text_characters(value)
    return value


_URL_FORBIDDEN = set('<>"`\\^{|}')
"""Characters a URL never holds unencoded; a browser may read them differently than we do
(`\\` is a `/` to a browser), or they break out of the page around the link."""
_URL_SUSPECT = re.compile(r'[^\x21-\x7e]|[<>"`\\^{|}]')
"""A character the checks below look at one by one (most URLs have none: plain ASCII)."""
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def check_url(value: str) -> str:
    """An absolute http(s) URL with a real host and no credentials, or a ValueError saying why."""
    for ch in value if _URL_SUSPECT.search(value) else ():
        if ch.isspace() or not ch.isprintable() or unicodedata.category(ch) == "Cf":
            raise ValueError(
                f"URL must not contain spaces or control or invisible characters (found {ch!r})"
            )
        if ch in _URL_FORBIDDEN:
            raise ValueError(f"URL must not contain `{ch}`; percent-encode it as %{ord(ch):02X}")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    del port
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("URL must not carry a user name or password")
    host = parts.hostname or ""
    if "." not in host.strip("."):
        raise ValueError("URL needs a real host name, such as https://example.org/page")
    try:
        labels = host.removesuffix(".").encode("idna").decode("ascii").split(".")
    except UnicodeError:
        labels = [""]
    if not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(f"`{host}` is not a valid host name")
    return value


def _number(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            f"expected a number, got text `{value[:40]}`; write numbers without quotes, "
            "an exponent as 1.5e+6"
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("expected a finite number")
    return value


def _key(value: str) -> str:
    if not KEY.match(value):
        raise ValueError("source keys use letters, digits and - _ . : (such as `ncmec-2023`)")
    return value


def _name(value: str) -> str:
    if not NAME.match(value):
        raise ValueError(
            "figure names use letters, digits and _, not starting with a digit "
            "(such as `reports_2023`)"
        )
    return value


Line = Annotated[
    str,
    AfterValidator(_one_line),
    WithJsonSchema({"type": "string", "pattern": r"^[^\r\n]*\S[^\r\n]*$"}),
]
"""One line of text, not blank."""
Text = Annotated[
    str, AfterValidator(_non_empty), WithJsonSchema({"type": "string", "pattern": r"\S"})
]
"""Text that is not blank; may span lines."""
Url = Annotated[
    str,
    AfterValidator(check_url),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"}),
]
Number = Annotated[int | float, BeforeValidator(_number), WithJsonSchema({"type": "number"})]
SourceKey = Annotated[
    str, AfterValidator(_key), WithJsonSchema({"type": "string", "pattern": KEY.pattern})
]
FigureName = Annotated[
    str, AfterValidator(_name), WithJsonSchema({"type": "string", "pattern": NAME.pattern})
]


class _Strict(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        # Built at first use: `check` of a warm cache validates no claim.
        defer_build=True,
    )


class Source(_Strict):
    """A document the claim relies on; cited in prose as `[@key]`."""

    title: Line
    """The document's title, as its publisher gives it."""
    publisher: Line | None = None
    """Who published it: an organization, outlet or author."""
    published: dt.date | None = None
    """When it was published (YYYY-MM-DD)."""
    url: Url | None = None
    """Where to read it: an absolute http(s) URL."""
    accessed: dt.date | None = None
    """When the fact-checker last read it (YYYY-MM-DD)."""
    archive_url: Url | None = None
    """An archived copy (Wayback Machine, archive.today...) in case the original changes."""
    archived: dt.date | None = None
    """When the archived copy was made (YYYY-MM-DD)."""
    note: Text | None = None
    """What we know of a source that could not be fully identified, or a caveat about it."""


class Figure(_Strict):
    """A number used in prose: a sourced value, or a formula over other figures."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["value"]}, {"required": ["formula"]}]}
    )

    value: Number | None = None
    """The number as the source gives it, unformatted: 36200000, not "36.2 million"."""
    display: Line | None = None
    """How prose shows the value when no format is given, such as `36.2 million`."""
    source: SourceKey | None = None
    """Key of the source the value comes from."""
    formula: Line | None = None
    """Arithmetic over other figures' names: + - * / and parentheses, such as `a / b`."""
    note: Text | None = None
    """What the figure measures, for reviewers."""


class Section(_Strict):
    """One numbered section of the article."""

    heading: Line
    """The section's heading, without its number."""
    body: Text
    """One or more paragraphs of Markdown; cite sources as `[@key]`, figures as `{name}`."""


class Appearance(_Strict):
    """Where and when the claim being checked was made."""

    url: Url | None = None
    """Where the claim can be seen."""
    date: dt.date | None = None
    """When the claim was made (YYYY-MM-DD)."""
    where: Line | None = None
    """The outlet, platform or event, such as `Senate hearing` or `X (Twitter)`."""


class Correction(_Strict):
    """A dated change made after publication, shown to readers."""

    date: dt.date
    """When the change was made (YYYY-MM-DD)."""
    note: Text
    """What changed and why (Markdown)."""
    kind: Literal["correction", "update"] = "correction"
    """`correction` fixes an error; `update` adds new information."""


class LintIgnore(_Strict):
    """One lint finding silenced on purpose, with the reason an editor can read."""

    rule: Line
    """The rule's name, as `check` prints it in brackets, such as `untraced-number`."""
    match: Line | None = None
    """What the finding is about, exactly as `check` shows it in backticks: a number
    (`2019`, `0.2%`), a source key, a figure name or a date field; omit to silence every
    finding of the rule in this claim."""
    reason: Line | None = None
    """Why the finding does not apply; an ignore without one silences nothing."""


class Lint(_Strict):
    """Lint settings of one claim."""

    ignore: list[LintIgnore] = Field(default_factory=list)
    """Findings silenced on purpose, each with its reason."""


class Claim(_Strict):
    """One fact-check: a question answered from sourced figures. The file name is its slug."""

    question: Line
    """The question the fact-check answers; the page title."""
    checked_on: dt.date
    """The date the facts were checked (YYYY-MM-DD)."""
    status: Status = "draft"
    """draft, review or published; only published claims go on the site."""
    topics: list[Line] = Field(default_factory=list)
    """Topics the claim is listed under, such as `NCMEC`."""
    verdict: Line | None = None
    """The rating on the site's scale (`rating_scale` in site.yaml), when the claim is rated."""
    claimant: Line | None = None
    """Who made the claim being checked."""
    claimant_type: Literal["person", "organization"] = "person"
    """Whether the claimant is a person or an organization (for search engines)."""
    appeared: Appearance | None = None
    """Where and when the claim being checked was made."""
    author: Line | None = None
    """Who wrote the fact-check."""
    editor: Line | None = None
    """Who edited the fact-check."""
    summary: Text
    """The executive summary: one paragraph of Markdown with citations `[@key]`."""
    sections: list[Section] = Field(min_length=1)
    """The numbered sections; the last is the bottom line."""
    limitations: list[Text] = Field(default_factory=list)
    """What the evidence cannot show (Markdown)."""
    follow_up: list[Line] = Field(default_factory=list)
    """Follow-up questions ("Want to dive deeper?"); one matching a claim's question links to it."""
    corrections: list[Correction] = Field(default_factory=list)
    """Corrections and updates after publication, oldest first."""
    figures: dict[FigureName, Figure] = Field(default_factory=dict)
    """Named numbers used in prose as `{name}` or `{name:format}`."""
    sources: dict[SourceKey, Source] = Field(default_factory=dict)
    """The documents cited in prose as `[@key]`."""
    lint: Lint | None = None
    """Lint findings silenced on purpose: `{ignore: [{rule, match, reason}]}`."""


class Rating(_Strict):
    """One step of the site's rating scale."""

    name: Line
    """The verdict as written in claim files and shown to readers, such as `Mostly true`."""
    description: Text | None = None
    """What the rating means, for the methodology page."""


class Site(_Strict):
    """Site-wide settings, from `site.yaml` at the project root."""

    title: Line
    """The site's name."""
    base_url: Url
    """Where the site is published, such as `https://factcheck.example.org/` or a sub-path."""
    organization: Line
    """The organization publishing the fact-checks."""
    description: Line | None = None
    """One sentence about the site, for the index page and feeds."""
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")] = "en"
    """Language of the pages, as a BCP 47 tag such as `en` or `en-GB`."""
    disclaimer: Text = "Fact-checks can contain mistakes. Please verify important information."
    """The line under every claim's date (Markdown; links allowed)."""
    date_format: Line = "MMMM d, y"
    """How dates are shown, as a CLDR pattern: `MMMM d, y` gives `January 16, 2026`."""
    rating_scale: list[Rating] = Field(default_factory=list)
    """The verdicts claims may carry, in order from most to least accurate."""
    require_approval: bool = False
    """Publish a claim only with an approval matching its current content."""
    stale_after_days: Annotated[int, Field(ge=1)] = 365
    """A check older than this many days is reported as stale."""
    page_size: Annotated[int, Field(ge=1)] = 50
    """How many entries one page of a listing shows (the front page, each topic, the
    sources index, the open questions); the rest follow on `page/2/` and on."""
    bottom_line: list[Line] = Field(default_factory=lambda: ["bottom line"])
    """Words the last section's heading must contain (any one, case ignored), such as
    `bottom line` or `conclusion`."""


WINDOWS_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{d}{n}" for d in ("com", "lpt") for n in range(10)]
)
"""Names Windows reserves for devices: a page folder so named cannot be checked out there."""


def slug_problem(stem: str) -> str | None:
    """Why a file name cannot be a claim's slug, or None when it can."""
    if len(stem) > MAX_SLUG:
        return f"file name is {len(stem)} characters; a slug has at most {MAX_SLUG}"
    if stem.lower() in WINDOWS_DEVICES:
        return f"`{stem}` is a device name on Windows; add a word to it"
    if not SLUG.match(stem):
        return (
            "file name must be a slug: lowercase letters, digits and single hyphens, "
            "such as `what-share-of-tips-are-pursued.yaml`"
        )
    return None
