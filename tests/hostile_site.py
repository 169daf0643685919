"""A project whose every text field carries the XSS corpus (tests/hostile/xss-vectors.txt),
and checks that an output holds no executable markup. Shared by the content, property and
browser tests."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

VECTORS = [
    line
    for line in (Path(__file__).parent / "hostile" / "xss-vectors.txt").read_text().splitlines()
    if line
]


def braces(text: str) -> str:
    """Prose text that shows exactly `text` (braces are figure references in prose)."""
    return text.replace("{", "{{").replace("}", "}}")


def claim_yaml(i: int, vector: str, next_question: str) -> str:
    """A published claim with `vector` in every text field."""
    prose = braces(vector)
    claim: dict[str, Any] = {
        "question": f"Q{i} {vector}",
        "checked_on": "2026-01-16",
        "status": "published",
        "topics": [vector, "Shared"],
        "verdict": VECTORS[i % 2] + " rating",
        "claimant": vector,
        "appeared": {"url": "https://example.org/said", "date": "2026-01-01", "where": vector},
        "author": vector,
        "editor": vector,
        "summary": f"{prose} {{shown}} [@src].\n\n{prose}",
        "sections": [
            {"heading": f"{prose} one", "body": f"{prose} [@src]\n\n- {prose}\n- `{prose}`"},
            {"heading": "Bottom line", "body": f"> {prose}\n\n{prose} {{ratio:.1%}}"},
        ],
        "limitations": [prose, f"*{prose}*"],
        "follow_up": [f"F{i} {vector}", next_question],
        "corrections": [{"date": "2026-01-20", "note": prose, "kind": "update"}],
        "figures": {
            "shown": {"value": 12, "display": vector, "source": "src", "note": vector},
            "other": {"value": 48, "source": "src"},
            "ratio": {"formula": "shown / other", "note": vector},
        },
        "sources": {
            "src": {
                "title": vector,
                "publisher": vector,
                "url": "https://example.org/a?b=c&d=%3Cscript%3E",
                "archive_url": "https://web.archive.org/web/2026/https://example.org/a",
                "note": vector,
            }
        },
    }
    text: str = yaml.safe_dump(claim, allow_unicode=True, sort_keys=False, width=10_000)
    # Dates as YAML dates, not strings.
    return re.sub(r"'(\d{4}-\d\d-\d\d)'", r"\1", text)


def site_yaml() -> str:
    """site.yaml with the corpus in every text setting."""
    site = {
        "title": VECTORS[0],
        "base_url": "https://checks.example.org/sub/",
        "organization": VECTORS[2],
        "description": VECTORS[35],
        "disclaimer": braces(VECTORS[22]) + " " + braces(VECTORS[15]),
        "date_format": "'<script>window.__pwned=1</script>' MMMM d, y",
        "rating_scale": [
            {"name": VECTORS[0] + " rating", "description": VECTORS[3]},
            {"name": VECTORS[1] + " rating", "description": braces(VECTORS[22])},
        ],
    }
    return yaml.safe_dump(site, allow_unicode=True, sort_keys=False, width=10_000)


def write_project(root: Path) -> Path:
    """The hostile project: one claim per vector, site.yaml and about.md hostile too."""
    (root / "claims").mkdir(parents=True)
    (root / "site.yaml").write_text(site_yaml())
    (root / "about.md").write_text("\n\n".join(VECTORS))
    for i, vector in enumerate(VECTORS):
        next_question = f"Q{(i + 1) % len(VECTORS)} {VECTORS[(i + 1) % len(VECTORS)]}"
        (root / "claims" / f"xss-{i:02d}.yaml").write_text(claim_yaml(i, vector, next_question))
    return root


# --- What no output may contain ------------------------------------------------------------

SAFE_SCHEMES = {"http", "https", "mailto"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "poster", "xlink:href",
                  "background", "srcdoc", "codebase", "cite", "longdesc", "srcset"}
FORBIDDEN_TAGS = {"iframe", "frame", "frameset", "object", "embed", "applet", "base", "form",
                  "style", "svg", "math", "template", "noscript", "textarea", "img", "video",
                  "audio", "input", "button", "select", "details", "dialog", "marquee"}
THEME_FORMS = {"site-search", "search-page-form"}
"""The theme's own search forms, the only place a form, input or button may appear."""


class _Checker(HTMLParser):
    def __init__(self, name: str) -> None:
        super().__init__(convert_charrefs=True)
        self.name = name
        self.problems: list[str] = []
        self.in_script: dict[str, str | None] | None = None
        self.script_text: list[str] = []
        self.in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        where = f"{self.name}: <{tag} {found}>"
        for attr, value in attrs:
            if attr.startswith("on"):
                self.problems.append(f"{where}: event handler {attr}")
            if attr == "style":
                self.problems.append(f"{where}: inline style")
            if attr in URL_ATTRIBUTES and value is not None:
                scheme = urlsplit(value.strip()).scheme.lower()
                if scheme and scheme not in SAFE_SCHEMES:
                    self.problems.append(f"{where}: {scheme}: URL")
        if tag == "script":
            self.in_script = found
            self.script_text = []
            src = found.get("src")
            if found.get("type") == "application/ld+json":
                return
            if src is None or urlsplit(src).scheme or not src.split("?")[0].endswith(".js"):
                self.problems.append(f"{where}: script that is not a theme file")
        elif tag == "meta" and found.get("http-equiv"):
            if (found["http-equiv"] or "").lower() != "content-security-policy" or \
                    "'unsafe-inline'" in (found.get("content") or ""):
                self.problems.append(f"{where}: meta http-equiv")
        elif tag == "link" and (found.get("rel") or "") not in (
                "stylesheet", "icon", "canonical", "alternate", "manifest"):
            self.problems.append(f"{where}: link rel")
        elif tag == "form" and found.get("class") in THEME_FORMS and not self.in_form:
            self.in_form = True
        elif tag in ("input", "button", "label") and self.in_form:
            pass
        elif tag in FORBIDDEN_TAGS:
            self.problems.append(f"{where}: tag the theme never writes")

    def handle_data(self, data: str) -> None:
        if self.in_script is not None:
            self.script_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.in_form = False
        if tag == "script" and self.in_script is not None:
            text = "".join(self.script_text)
            if self.in_script.get("type") == "application/ld+json":
                if "<" in text:
                    self.problems.append(f"{self.name}: `<` inside JSON-LD")
                try:
                    json.loads(text)
                except ValueError as exc:
                    self.problems.append(f"{self.name}: JSON-LD does not parse: {exc}")
            elif text.strip():
                self.problems.append(f"{self.name}: inline script {text[:80]!r}")
            self.in_script = None


def html_problems(name: str, text: str) -> list[str]:
    """Executable or page-changing markup in an HTML document or fragment."""
    checker = _Checker(name)
    checker.feed(text)
    checker.close()
    return checker.problems


def json_problems(name: str, text: str) -> list[str]:
    """A JSON file that does not parse, or whose HTML values hold executable markup."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return [f"{name}: does not parse: {exc}"]
    problems = []
    if re.search(r"<\s*/?\s*script", text, re.IGNORECASE):
        problems.append(f"{name}: a raw `<script` in JSON (unsafe to embed)")

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key == "html":
            problems.extend(html_problems(f"{name} (html)", value))

    walk(data)
    return problems


def xml_problems(name: str, text: str) -> list[str]:
    """An XML file that is not well-formed, holds elements it should not, or whose HTML
    content holds executable markup."""
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as exc:
        return [f"{name}: not well-formed: {exc}"]
    namespace = root.tag.partition("}")[0] + "}"
    problems = []
    for element in root.iter():
        if not element.tag.startswith(namespace):
            problems.append(f"{name}: foreign element {element.tag}")
        if element.get("type") == "html" and element.text:
            problems.extend(html_problems(f"{name} ({element.tag})", element.text))
        for attr in ("href", "src", "uri"):
            value = element.get(attr)
            if value and urlsplit(value).scheme.lower() not in ("http", "https"):
                problems.append(f"{name}: {attr}={value!r}")
    return problems


def output_problems(root: Path) -> list[str]:
    """Every problem in every file of a built site."""
    problems: list[str] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(root).as_posix()
        if name.startswith("pagefind/"):
            continue  # Pagefind's compressed index: the browser test searches it instead
        data = path.read_bytes()
        text = data.decode("utf-8")  # every output is UTF-8; this raises when one is not
        if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text):
            problems.append(f"{name}: control character")
        if name.endswith(".html"):
            problems += html_problems(name, text)
        elif name.endswith(".json"):
            problems += json_problems(name, text)
        elif name.endswith(".xml"):
            problems += xml_problems(name, text)
    return problems
