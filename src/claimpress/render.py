"""The Jinja environment and one entry per output format.

Templates come from the project's `templates/` first, then the default theme, file by
file. Claim text reaches templates only as escaped strings or as `Block.html`, which
`prose.py` has sanitized: that is the one place markup is trusted.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
from babel.dates import format_date

from . import __version__, prose
from .model import Site
from .resolve import OpenQuestion, Page

THEME_DIR = "templates"


def default_theme() -> Path:
    """The default theme: shipped inside the package, or the checkout's top-level templates/."""
    packaged = Path(__file__).parent / THEME_DIR
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / THEME_DIR


def theme_dirs(root: Path) -> list[Path]:
    """Template folders in lookup order: the project's overrides, then the default theme."""
    dirs = [root / THEME_DIR, default_theme()]
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


class Renderer:
    """Renders pages of one project with one compiled environment."""

    def __init__(self, root: Path, site: Site) -> None:
        self.site = site
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in theme_dirs(root)]),
            autoescape=jinja2.select_autoescape(["html", "xml"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters["date"] = self.format_date
        self.env.filters["md"] = prose.escape_markdown
        self.env.filters["isodate"] = lambda d: d.isoformat() if d else ""
        self.env.globals.update(site=site, disclaimer=self.disclaimer, version=__version__)

    def format_date(self, value: dt.date) -> str:
        """A date in the site's language and format: `January 16, 2026`."""
        return format_date(
            value, format=self.site.date_format, locale=self.site.language.replace("-", "_")
        )

    @cached_property
    def disclaimer(self) -> prose.Block:
        """The site's disclaimer line, rendered (Markdown, no figures or citations)."""
        parsed = prose.Parsed(self.site.disclaimer.replace("\ue000", "").replace("\ue001", ""), ())
        return prose.render(parsed, html_values=(), text_values=(), markdown_values=(), inline=True)

    def render(self, template: str, **context: Any) -> str:
        """Render one template with the given context."""
        return self.env.get_template(template).render(**context)

    def claim_html(self, page: Page, *, root: str = "../../", draft: bool = False) -> str:
        """The claim's page on the site."""
        return self.render(
            "claim.html",
            page=page,
            root=root,
            draft=draft,
            path=f"claims/{page.slug}/",
            data=claim_data(page, self.site),
        )

    def claim_text(self, page: Page) -> str:
        """The claim in the house plain-text format, followed by its sources."""
        return self.render("claim.txt", page=page)

    def claim_markdown(self, page: Page) -> str:
        """The claim as a Markdown document."""
        return self.render("claim.md", page=page)

    def claim_json(self, page: Page) -> str:
        """The resolved claim as JSON: numbered citations, computed figures."""
        return dumps(claim_data(page, self.site))

    def index_html(self, pages: list[Page], *, drafts: bool = False) -> str:
        """The site's front page: every claim on the site, newest check first."""
        return self.render("index.html", pages=pages, root="", path="", draft=drafts)

    def open_questions_html(self, questions: list[OpenQuestion], *, drafts: bool = False) -> str:
        """The open-questions page: follow-ups no claim answers yet, with who asks them."""
        return self.render(
            "open_questions.html",
            questions=questions,
            root="../",
            path="open-questions/",
            draft=drafts,
        )


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def claim_data(page: Page, site: Site) -> dict[str, Any]:
    """The resolved claim as plain data: what `index.json`, `claims.json` and exports carry."""
    claim = page.claim
    return {
        "slug": page.slug,
        "url": site.base_url.rstrip("/") + f"/claims/{page.slug}/",
        "question": claim.question,
        "checked_on": claim.checked_on,
        "updated_on": page.updated_on,
        "status": claim.status,
        "topics": claim.topics,
        "verdict": claim.verdict,
        "claimant": claim.claimant,
        "appeared": claim.appeared.model_dump() if claim.appeared else None,
        "author": claim.author,
        "editor": claim.editor,
        "summary": {"text": page.summary.text, "html": page.summary.html},
        "sections": [
            {
                "number": s.number,
                "heading": s.heading.text,
                "text": s.body.text,
                "html": s.body.html,
            }
            for s in page.sections
        ],
        "limitations": [b.text for b in page.limitations],
        "corrections": [
            {"date": c.correction.date, "kind": c.correction.kind, "note": c.note.text}
            for c in page.corrections
        ],
        "follow_up": [{"question": f.question, "slug": f.slug} for f in page.follow_ups],
        "sources": [
            {"number": s.number, "key": s.key, **s.source.model_dump()} for s in page.sources
        ],
        "figures": {
            f.name: {
                "value": _number(f.value),
                "shown": f.shown,
                "source": f.source,
                "formula": f.formula,
                "derivation": f.derivation,
            }
            for f in page.figures
        },
    }


def _default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _number(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(data: Any) -> str:
    """Deterministic, readable JSON, safe to embed in HTML (`<`, `>` and `&` escaped)."""
    text = json.dumps(data, default=_default, ensure_ascii=False, indent=2, sort_keys=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"
