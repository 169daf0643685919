"""Prose: citations and figures parsed, Markdown sanitized, text kept exact."""

from __future__ import annotations

from html.parser import HTMLParser

import markdown
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from claimpress import prose


def test_tokens_and_literal_braces() -> None:
    parsed = prose.parse("A {x:.1%} and {{literal}} [@a; @b] [@c]")
    assert parsed.tokens == (prose.FigureRef("x", ".1%"), prose.Cite(("a", "b")),
                             prose.Cite(("c",)))
    assert "{literal}" in parsed.template


@pytest.mark.parametrize(("text", "message"), [
    ("a { b", "lone `{`"),
    ("a } b", "lone `}`"),
    ("{not a name}", "not a figure reference"),
    ("[@ok; nokey]", "not a citation"),
    ("[@bad key]", "not a citation"),
    ("x \ue000 y", "private-use"),
])
def test_bad_tokens_are_explained(text: str, message: str) -> None:
    with pytest.raises(prose.ProseError, match=message):
        prose.parse(text)


@pytest.mark.parametrize("attack", [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<iframe src=https://evil.example.org></iframe>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    '<a href="#" onclick="alert(1)">x</a>',
    "<base href=https://evil.example.org/>",
    '<meta http-equiv="refresh" content="0;url=https://evil.example.org">',
    '"><script>alert(1)</script>',
])
def test_markdown_is_sanitized(attack: str) -> None:
    html = prose.markdown_html(attack).lower()
    for bad in ("<script", "onerror", "onload", "onclick", "<iframe", "<svg", "<base",
                "<meta", "javascript:", "vbscript:", "data:text"):
        assert bad not in html


@pytest.mark.parametrize("text", [
    "Plain “quoted” text — with ÷ and → arrows.",
    "Stars *not* emphasis, _under_ scores, `ticks` and \\ backslashes.",
    "# not a heading", "1. not a list", "- not a list", "> not a quote",
    "<b>not a tag</b> &amp; not an entity & ampersand",
    "&#169; &#x27; &copy; are not entities either",
    "[not a link](https://example.org) and [1] markers",
    "[@key] is not a citation, nor [@a; @b], nor \\[@c]",
    "---", "--- not a rule", "-- dashes", "1) not a list", "+ not a list",
])
def test_escaped_text_renders_back_to_itself(text: str) -> None:
    escaped = prose.escape_braces(prose.escape_markdown(text))
    parsed = prose.parse(escaped)
    assert prose.html_text(prose.markdown_html(parsed.template)) == text


def test_html_text_keeps_paragraphs_and_lists() -> None:
    html = prose.markdown_html("First para\ncontinued.\n\n- one\n- two\n\n1. a\n2. b")
    assert prose.html_text(html) == "First para continued.\n\n- one\n\n- two\n\n1. a\n\n2. b"


@settings(max_examples=500)
@given(st.text(st.sampled_from(list("ab1 *_`[]()<>&#;!\\{}-+.=|~:@\"'é—\x7f\u00a0")),
               min_size=1, max_size=40))
def test_any_escaped_line_renders_back_to_itself(text: str) -> None:
    """What `import` relies on: one line of text, escaped, is shown exactly as it was."""
    text = text.strip()
    assume(text)
    parsed = prose.parse(prose.escape_braces(prose.escape_markdown(text)))
    for inline in (False, True):
        block = prose.render(parsed, html_values=[], text_values=[], markdown_values=[],
                             inline=inline)
        assert block.text == text


_REFERENCE = markdown.Markdown(output_format="html", extensions=["sane_lists"])
_PIECES = [*"ab *_`\\[]()!<>&;#\n\t\r-+1.:/@\"'", "  \n", "    ", "\n\n", "* ", "1. ", "> ",
           "```", "<b>", "</b>", "&amp;", "http://a.b", "<http://a.b>", "<a@b.c>",
           "[x]: http://e.org\n", "[x]", "![i](j)", "\ue000", "\x02", "\x03"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30).map("".join))
def test_markdown_tries_only_the_patterns_that_can_match_with_the_same_html(text: str) -> None:
    _REFERENCE.reset()
    assert prose._convert(text) == _REFERENCE.convert(text)


class _HTMLParserText(HTMLParser):
    """The same text through the standard library's HTML parser, to compare with."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text = prose._Text()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.text.start(tag)

    def handle_endtag(self, tag: str) -> None:
        self.text.end(tag)

    def handle_data(self, data: str) -> None:
        self.text.data(data)


_HTML_PIECES = [*_PIECES, "&#169;", "&nbsp;", "\xa0", '[l](http://x.y "t>i\'tle")', "<pre>",
                "</pre>", "<br>", "<br/>", "<table><tr><td>a</td><th>b</th></tr></table>",
                "| a | b |\n|---|---|\n| c | d |\n", "<ul><li>", "</li></ul>", "<ol>", "<li>",
                "<p>", "</p>", "<!-- c -->", "<h3>", "<script>x</script>", "<a href='q>r'>",
                "</a>", "<hr>", "<code>", "</code>"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_HTML_PIECES), max_size=25).map("".join))
def test_plain_text_reads_sanitized_html_as_the_html_parser_does(text: str) -> None:
    fragment = prose.markdown_html(text)
    parser = _HTMLParserText()
    parser.feed(fragment)
    parser.close()
    assert prose.html_text(fragment) == parser.text.result()


_PLAIN_PIECES = [*"aZ09 ,.;:?'\"()%$/-#*_\\<>&\n", "\ue000", "\ue001", "word", "1.", "1)", "- ",
                 "  ", "---", "==", "http://x.y", "\ue0000\ue001", "é"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PLAIN_PIECES), max_size=20).map(lambda p: "Word" + "".join(p)))
def test_a_plain_line_skips_markdown_with_the_same_html(text: str) -> None:
    assert prose.markdown_html.__wrapped__(text) == prose._sanitized(text)
