"""Prose: citation keys and figure references, Markdown to sanitized HTML, plain text.

Claim text is data. It is parsed for exactly two kinds of token, `[@key]` and
`{figure:format}`, each replaced by a private-use placeholder; the rest goes
through Markdown once (cached per distinct text) and the nh3 sanitizer, and only
then are the placeholders filled with escaped values.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import markdown
import nh3
from markdown.extensions.sane_lists import SaneListExtension
from markdown.treeprocessors import InlineProcessor
from markupsafe import Markup

from .model import KEY, NAME

_OPEN, _CLOSE = "\ue000", "\ue001"
PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
# A backslash before a bracket or a backslash is Markdown's escape: `\[@x]` is literal text.
_TOKEN = re.compile(r"\\[\\\[\]]|\{\{|\}\}|\{([^{}\n]*)\}|[{}]|\[(@[^\[\]\n]*)\]")
_CITE_SPLIT = re.compile(r"\s*[;,]\s*")

ALLOWED_TAGS = {
    "p",
    "br",
    "em",
    "strong",
    "a",
    "code",
    "pre",
    "ul",
    "ol",
    "li",
    "blockquote",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "sup",
    "sub",
    "del",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}
_BLOCKS = {"p", "li", "blockquote", "pre", "h3", "h4", "h5", "h6", "tr", "hr", "ul", "ol", "table"}


@dataclass(frozen=True)
class Cite:
    """A citation of one or more sources: `[@a]` or `[@a; @b]`."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class FigureRef:
    """A figure shown in prose: `{name}` or `{name:spec}`."""

    name: str
    spec: str | None


Token = Cite | FigureRef


@dataclass(frozen=True)
class Parsed:
    """Prose with its tokens replaced by numbered placeholders."""

    template: str
    tokens: tuple[Token, ...]


@dataclass(frozen=True)
class Block:
    """One piece of prose, rendered for every output format."""

    html: Markup
    """Sanitized HTML, marked safe: templates insert it as it is."""
    text: str
    """Plain text, paragraphs separated by blank lines."""
    markdown: str
    """Markdown, with citations and figures written out."""


class ProseError(ValueError):
    """Prose that cannot be parsed; the message says what to write instead."""


def parse(text: str) -> Parsed:
    """Find the citations and figure references in `text`, or raise ProseError for all problems."""
    if _OPEN in text or _CLOSE in text:
        raise ProseError("contains private-use characters U+E000/U+E001; remove them")
    tokens: list[Token] = []
    problems: list[str] = []
    out: list[str] = []
    last = 0
    for match in _TOKEN.finditer(text):
        out.append(text[last : match.start()])
        last = match.end()
        whole = match[0]
        token: Token | None = None
        if whole[0] == "\\":
            out.append(whole)
            continue
        if whole in ("{{", "}}"):
            out.append(whole[0])
            continue
        if whole in ("{", "}"):
            problems.append(
                f"lone `{whole}`; write `{whole * 2}` for a literal brace, "
                "or `{name}` for a figure"
            )
            continue
        if match[1] is not None:
            name, _, spec = match[1].partition(":")
            if not NAME.match(name):
                problems.append(
                    f"`{whole}` is not a figure reference; use `{{figure_name}}` or "
                    f"`{{figure_name:.1%}}`, and `{{{{` for a literal brace"
                )
                continue
            token = FigureRef(name, spec if ":" in match[1] else None)
        else:
            keys = tuple(k.removeprefix("@") for k in _CITE_SPLIT.split(match[2].strip()))
            bad = [k for k in keys if not KEY.match(k)]
            if bad or not all(
                part.strip().startswith("@") for part in _CITE_SPLIT.split(match[2].strip())
            ):
                problems.append(f"`{whole}` is not a citation; write `[@key]` or `[@key1; @key2]`")
                continue
            token = Cite(keys)
        out.append(f"{_OPEN}{len(tokens)}{_CLOSE}")
        tokens.append(token)
    out.append(text[last:])
    if problems:
        raise ProseError("; ".join(problems))
    return Parsed("".join(out), tuple(tokens))


@lru_cache(maxsize=256)
def token_spans(text: str) -> tuple[tuple[int, int, Token | None], ...]:
    """Where each citation, figure reference and escaped brace is in `text`, with the token
    when it is one; for lint, which must tell typed text from computed text (several rules
    read the same fields: kept for the last few texts)."""
    spans: list[tuple[int, int, Token | None]] = []
    for match in _TOKEN.finditer(text):
        token: Token | None = None
        if match[1] is not None:
            name, _, spec = match[1].partition(":")
            token = FigureRef(name, spec if ":" in match[1] else None)
        elif match[2] is not None:
            token = Cite(tuple(k.strip().removeprefix("@") for k in _CITE_SPLIT.split(match[2])))
        spans.append((match.start(), match.end(), token))
    return tuple(spans)


# The extension itself, not its name: a name is looked up among every installed package's
# entry points (8 ms of each start here, more in an environment with more packages).
_MARKDOWN = markdown.Markdown(output_format="html", extensions=[SaneListExtension()])
_MARKDOWN_LOCK = threading.Lock()
"""The one Markdown instance is not thread-safe, and `serve` renders in two threads."""
_INLINE = cast(InlineProcessor, _MARKDOWN.treeprocessors["inline"])
_ALL_INLINE = _INLINE.inlinePatterns

_TRIGGERS = {
    "backtick": ("`",),
    "escape": ("\\",),
    "reference": ("[",),
    "link": ("[",),
    "image_link": ("[",),
    "image_reference": ("[",),
    "short_reference": ("[",),
    "short_image_ref": ("[",),
    "autolink": ("<",),
    "automail": ("<",),
    "linebreak": ("  \n", "\t", "\r"),
    "html": ("<",),
    "entity": ("&",),
    "not_strong": ("*", "_"),
    "em_strong": ("*", "_"),
    "em_strong2": ("_",),
}
"""What each of Markdown's inline patterns cannot match without: most prose holds no `<`,
`&` or backtick, and trying every pattern on every piece of text is most of Markdown's
time. Patterns not named here are always tried."""
_NAMES = {_ALL_INLINE.get_index_for_name(n): n for n in _TRIGGERS if n in _ALL_INLINE}


@lru_cache(maxsize=64)
def _inline_patterns(kept: tuple[bool, ...]) -> markdown.util.Registry[InlineProcessor]:
    """The inline patterns marked `kept`, in their order."""
    registry: markdown.util.Registry[InlineProcessor] = markdown.util.Registry()
    for i, (pattern, keep) in enumerate(zip(_ALL_INLINE, kept, strict=True)):
        if keep:
            registry.register(pattern, _NAMES.get(i, f"pattern-{i}"), len(kept) - i)
    return registry


def _convert(template: str) -> str:
    """Markdown to HTML, trying only the inline patterns that can match the text: the same
    HTML as trying them all."""
    # As Markdown reads the text: STX and ETX removed (which can join spaces and a line
    # break), and a line break at the end.
    seen = template.replace(markdown.util.STX, "").replace(markdown.util.ETX, "") + "\n"
    kept = tuple(
        i not in _NAMES or any(t in seen for t in _TRIGGERS[_NAMES[i]])
        for i in range(len(_ALL_INLINE))
    )
    with _MARKDOWN_LOCK:
        _MARKDOWN.reset()
        _INLINE.inlinePatterns = _inline_patterns(kept)
        try:
            return _MARKDOWN.convert(template)
        finally:
            _INLINE.inlinePatterns = _ALL_INLINE


_PLAIN = re.compile(r"[A-Za-z\ue000][A-Za-z0-9 ,.;:?'\"()%$/\ue000\ue001-]*(?<! )")
"""One line of words, numbers, plain punctuation and placeholders, starting with a letter
(or a placeholder) and not ending with a space: nothing Markdown reads as markup (no list,
heading or code marker, emphasis, link, escape, entity or tag) and nothing the sanitizer
changes, so its HTML is the line as a paragraph. Most headings are such a line."""


@lru_cache(maxsize=4096)
def markdown_html(template: str) -> str:
    """Markdown to sanitized HTML, once per distinct text."""
    if _PLAIN.fullmatch(template):
        return f"<p>{template}</p>"
    return _sanitized(template)


_CLEANER = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    attributes=ALLOWED_ATTRIBUTES,
    url_schemes=URL_SCHEMES,
    link_rel="noopener noreferrer nofollow",
)
"""The sanitizer of claim prose, set up once (`nh3.clean` sets one up per call: 21 against
13 us for a paragraph)."""


def _sanitized(template: str) -> str:
    """Markdown to sanitized HTML, through Markdown and the sanitizer."""
    return _CLEANER.clean(_convert(template))


def document_html(text: str) -> Markup:
    """A whole Markdown document of the site's own (about.md) to sanitized HTML; its headings
    start at `##`, under the page's title."""
    with _MARKDOWN_LOCK:
        _MARKDOWN.reset()
        raw = _MARKDOWN.convert(text)
    return Markup(
        nh3.clean(
            raw,
            tags=ALLOWED_TAGS | {"h2"},
            attributes=ALLOWED_ATTRIBUTES,
            url_schemes=URL_SCHEMES,
            link_rel="noopener noreferrer",
        )
    )


_MARKUP = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9]*)(?:\s[^>\"']*(?:(?:\"[^\"]*\"|'[^']*')[^>\"']*)*)?/?>"
)
"""A start or end tag as the sanitizer writes them (attribute values quoted; every other
`<` escaped), so a tag never hides in text nor text in a tag."""


@lru_cache(maxsize=4096)
def html_text(fragment: str) -> str:
    """Plain text of sanitized HTML: one paragraph per block, entities decoded."""
    text = _Text()
    last = 0
    for tag in _MARKUP.finditer(fragment):
        if tag.start() > last:
            text.data(html.unescape(fragment[last : tag.start()]))
        last = tag.end()
        if tag[1]:
            text.end(tag[2].lower())
        else:
            text.start(tag[2].lower())
    if last < len(fragment):
        text.data(html.unescape(fragment[last:]))
    return text.result()


def unwrap_paragraph(fragment: str) -> str:
    """`<p>x</p>` to `x`, for one-line prose such as headings."""
    if fragment.startswith("<p>") and fragment.endswith("</p>") and fragment.count("<p>") == 1:
        return fragment[3:-4]
    return fragment


def fill(rendered: str, values: Sequence[str]) -> str:
    """Replace each placeholder with its value, already escaped for the output format."""
    return PLACEHOLDER.sub(lambda m: values[int(m[1])], rendered)


def render(
    parsed: Parsed,
    *,
    html_values: Sequence[str],
    text_values: Sequence[str],
    markdown_values: Sequence[str],
    inline: bool = False,
) -> Block:
    """Render parsed prose with the given per-token values for each format."""
    fragment = markdown_html(parsed.template)
    if inline:
        fragment = unwrap_paragraph(fragment)
    markdown_text = (
        parsed.template
        if markdown_is_inert(parsed.template)
        else escape_markdown(html_text(fragment))
    )
    return Block(
        html=Markup(fill(fragment, html_values)),
        text=fill(html_text(fragment), text_values),
        markdown=fill(markdown_text, markdown_values),
    )


_TAG_START = re.compile(r"<[A-Za-z/!?]")
_LINK_TARGET = re.compile(r"\]\s*\(\s*<?([^)\s>]*)|^\s{0,3}\[[^\]]+\]:\s*<?(\S*)", re.MULTILINE)
_SAFE_TARGET = re.compile(r"^(?:https?:|mailto:|#|/|\.|[^:]*$)", re.IGNORECASE)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\x9f]+")


def markdown_is_inert(template: str) -> bool:
    """True when Markdown holds no raw HTML or image and links only to http(s), mailto or
    relative targets, in any Markdown renderer: then an export may carry it as written;
    otherwise the export carries its sanitized plain text."""
    if _TAG_START.search(template) or "![" in template:  # raw HTML, or an image the site drops
        return False
    for match in _LINK_TARGET.finditer(template):
        target = _INVISIBLE.sub("", html.unescape(match[1] or match[2] or ""))
        if not _SAFE_TARGET.match(target):
            return False
    return True


def plain_block(text: str) -> Block:
    """A block for text that is not Markdown (a question, a title): escaped, never parsed."""
    return Block(
        html=Markup(html.escape(text, quote=True)), text=text, markdown=escape_markdown(text)
    )


_MD_SPECIAL = re.compile(r"([\\`*_\[\]>#])")
_MD_LINE_START = re.compile(r"^(\s*)([-+>#]|\d+[.)])(?=\s|$|-)", re.MULTILINE)
_ENTITY = re.compile(r"&(?=#?\w+;)")


def escape_markdown(text: str) -> str:
    """Text that Markdown will render back as exactly this text."""
    text = _ENTITY.sub("&amp;", text)  # before `#` is escaped: `&\#169;` is still ©
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = text.replace("<", "&lt;")
    return _MD_LINE_START.sub(lambda m: m[1] + m[2][:-1] + "\\" + m[2][-1], text)


def escape_braces(text: str) -> str:
    """Text that prose parsing reads back as exactly this text."""
    return text.replace("{", "{{").replace("}", "}}")


class _Text:
    """Plain text built from the tags and text of sanitized HTML, in order."""

    def __init__(self) -> None:
        self._blocks: list[str] = []
        self._current: list[str] = []
        self._lists: list[list[int]] = []  # per open list: [is_ordered, counter]
        self._pre = 0
        self._marker = ""  # a list item's marker, waiting for the item's first text

    def _flush(self) -> None:
        text = "".join(self._current)
        if not self._pre:
            text = text.replace("\n", " ")
        if text.strip():
            self._blocks.append(text.strip("\n") if self._pre else text.strip(" "))
        self._current = []

    def start(self, tag: str) -> None:
        """A start tag."""
        if tag == "br":
            self._current.append("\n" if self._pre else " ")
            return
        if tag in _BLOCKS:
            self._flush()
        if tag in ("ul", "ol"):
            self._lists.append([tag == "ol", 0])
        elif tag == "li" and self._lists:
            ordered = self._lists[-1]
            ordered[1] += 1
            self._marker = f"{ordered[1]}. " if ordered[0] else "- "
        elif tag == "pre":
            self._pre += 1

    def end(self, tag: str) -> None:
        """An end tag."""
        if tag in _BLOCKS:
            self._flush()
        if tag in ("ul", "ol") and self._lists:
            self._lists.pop()
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        elif tag in ("td", "th"):
            self._current.append(" ")

    def data(self, data: str) -> None:
        """Text between tags, entities decoded."""
        if self._marker and data.strip():
            self._current.append(self._marker)
            self._marker = ""
            data = data.lstrip()
        self._current.append(data)

    def result(self) -> str:
        """The text: blocks separated by blank lines."""
        self._flush()
        return "\n\n".join(self._blocks)


def cite_values(
    numbers: Callable[[str], int], token: Cite, occurrence: Callable[[int], int]
) -> tuple[str, str, str]:
    """HTML, text and Markdown for one citation, given each key's number on the page."""
    html_parts, text_parts, md_parts = [], [], []
    for key in token.keys:
        n = numbers(key)
        nth = occurrence(n)
        html_parts.append(
            f'<a class="cite" id="cite-{n}-{nth}" href="#source-{n}" '
            f'aria-label="source {n}">[{n}]</a>'
        )
        text_parts.append(f"[{n}]")
        md_parts.append(f"[\\[{n}\\]](#source-{n})")
    return " ".join(html_parts), " ".join(text_parts), " ".join(md_parts)
