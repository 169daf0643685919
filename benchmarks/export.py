"""Write a claimpress project's published claims as Hugo, Pelican and MkDocs inputs.

Every tool gets the same content: each claim's Markdown as `claimpress export --format md`
renders it (figures computed, citations numbered, sources listed), as one article with
its title, date and topics as tags.

    python benchmarks/export.py PROJECT OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from claimpress.project import gather
from claimpress.render import Renderer

HUGO_CONFIG = """\
baseURL = "https://bench.example.org/"
title = "Benchmark Checks"
languageCode = "en"
[markup.goldmark.renderer]
unsafe = true
"""
HUGO_LAYOUTS = {
    "_default/baseof.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ .Title }}</title>
<link rel="stylesheet" href="{{ "style.css" | relURL }}"></head>
<body><header><a href="{{ "/" | relURL }}">{{ site.Title }}</a></header>
<main>{{ block "main" . }}{{ end }}</main><footer>{{ site.Title }}</footer></body></html>
""",
    "_default/single.html": """{{ define "main" }}<article><h1>{{ .Title }}</h1>
<p><time>{{ .Date.Format "January 2, 2006" }}</time>
{{ range .Params.tags }} <a href="{{ "/tags/" | relURL }}{{ . | urlize }}/">{{ . }}</a>{{ end }}</p>
{{ .Content }}</article>{{ end }}
""",
    "_default/list.html": """{{ define "main" }}<h1>{{ .Title }}</h1><ol>
{{ range .Pages }}<li><a href="{{ .RelPermalink }}">{{ .Title }}</a>
<time>{{ .Date.Format "January 2, 2006" }}</time><p>{{ .Summary }}</p></li>{{ end }}
</ol>{{ end }}
""",
}
PELICAN_CONFIG = """\
SITENAME = "Benchmark Checks"
SITEURL = ""
TIMEZONE = "UTC"
DEFAULT_LANG = "en"
DEFAULT_PAGINATION = 20
FEED_ALL_ATOM = None
CATEGORY_FEED_ATOM = None
"""
MKDOCS_CONFIG = """\
site_name: Benchmark Checks
site_url: https://bench.example.org/
theme: mkdocs
"""


def main() -> None:
    """`export.py PROJECT OUT`: write OUT/hugo, OUT/pelican and OUT/mkdocs."""
    project_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    project = gather(project_dir)
    renderer = Renderer(project.root, project.site)
    hugo, pelican, mkdocs = out / "hugo", out / "pelican", out / "mkdocs"
    for folder in (hugo / "content" / "claims", pelican / "content", mkdocs / "docs" / "claims"):
        folder.mkdir(parents=True, exist_ok=True)
    (hugo / "hugo.toml").write_text(HUGO_CONFIG)
    for rel, text in HUGO_LAYOUTS.items():
        (hugo / "layouts" / rel).parent.mkdir(parents=True, exist_ok=True)
        (hugo / "layouts" / rel).write_text(text)
    (pelican / "pelicanconf.py").write_text(PELICAN_CONFIG)
    (mkdocs / "mkdocs.yml").write_text(MKDOCS_CONFIG)
    (mkdocs / "docs" / "index.md").write_text("# Benchmark Checks\n")
    for page in project.published():
        body = renderer.claim_markdown(page).split("\n", 2)[2]  # drop the title line
        title, date = page.claim.question, page.claim.checked_on.isoformat()
        (hugo / "content" / "claims" / f"{page.slug}.md").write_text(
            f"---\ntitle: {json.dumps(title)}\ndate: {date}\n"
            f"tags: {json.dumps(page.claim.topics)}\n---\n{body}"
        )
        (pelican / "content" / f"{page.slug}.md").write_text(
            f"Title: {title}\nDate: {date}\nTags: {', '.join(page.claim.topics)}\n"
            f"Slug: {page.slug}\n\n{body}"
        )
        (mkdocs / "docs" / "claims" / f"{page.slug}.md").write_text(f"# {title}\n\n{body}")


if __name__ == "__main__":
    main()
