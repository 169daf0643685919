"""Property-based tests: arbitrary bytes and text, in every input and every field, never
crash claimpress, always give a located error or a safe site. Bounded so the suite stays
fast (max_examples, no deadline: the machine is shared)."""

from __future__ import annotations

import hashlib
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

import markdown
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimpress import lint, listing, prose, yamltree
from claimpress.load import parse_model
from claimpress.model import WINDOWS_DEVICES, Claim, Site, check_url
from claimpress.problems import Problem, ordered
from claimpress.project import gather
from claimpress.site import plan_site
from conftest import CLAIM_YAML, SITE_YAML
from hostile_site import VECTORS, html_problems, json_problems, xml_problems

BOUNDED = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])
LOCATED = re.compile(r"^[^\n]+:\d+:\d+: [^\n]+$")

YAML_BITS = ["question:", "summary:", "sections:", "  - ", "- ", ": ", "{", "}", "[", "]",
             "&a ", "*a", "!!python/object ", "!x ", "'", '"', "\n", "\t", "#", "---\n",
             "...\n", "<<: ", "? ", "|\n", ">-\n", "2026-01-16", "NO", "0755", "1:20", "~",
             "\ufeff", "\x00", "\x85", "\u2028", "\xe9", "%TAG ! x\n", "\\", "\r"]
yamlish = st.lists(st.one_of(st.sampled_from(YAML_BITS), st.text(max_size=8)),
                   max_size=40).map("".join)
hostile_text = st.one_of(
    st.sampled_from(VECTORS),
    st.text(max_size=60),
    st.tuples(st.sampled_from(VECTORS), st.text(max_size=20)).map("".join),
)


@BOUNDED
@given(st.one_of(st.binary(max_size=400), yamlish.map(lambda t: t.encode("utf-8", "replace"))))
def test_any_bytes_parse_or_fail_with_a_location(data: bytes) -> None:
    document = yamltree.parse(data, "x.yaml")
    if document.root is None:
        assert document.problems
        for problem in document.problems:
            assert problem.line >= 1 and problem.col >= 1
            assert LOCATED.match(str(problem)), str(problem)
    else:
        assert isinstance(document.root.value, dict)


@BOUNDED
@given(yamlish, st.sampled_from([Claim, Site]))
def test_any_yaml_validates_or_gives_located_problems(text: str, shape: Any) -> None:
    value, _, problems = parse_model(text.encode("utf-8", "replace"), "x.yaml", shape)
    assert (value is None) == bool(problems)
    for problem in problems:
        assert LOCATED.match(str(problem)), str(problem)
        assert "Traceback" not in problem.message


@BOUNDED
@given(st.text(max_size=80))
def test_check_url_accepts_only_absolute_http_urls(text: str) -> None:
    try:
        url = check_url(text)
    except ValueError as exc:
        assert str(exc)
        return
    assert re.match(r"(?i)^https?://[^/?#\s]*\.", url)
    assert not any(ch.isspace() or ch in '<>"\\`' for ch in url)


@BOUNDED
@given(hostile_text)
def test_prose_renders_to_safe_html_or_a_prose_error(text: str) -> None:
    try:
        parsed = prose.parse(text)
    except prose.ProseError as exc:
        assert str(exc)
        return
    fragment = prose.markdown_html(parsed.template)
    assert html_problems("prose", fragment) == []
    if prose.markdown_is_inert(parsed.template):  # exported as written: safe anywhere
        assert html_problems("markdown", markdown.markdown(parsed.template)) == []


FIELDS = ["question", "topic", "claimant", "author", "summary", "heading", "body",
          "limitation", "follow_up", "title", "publisher", "display", "where"]


def claim_with(values: dict[str, str]) -> str:
    """The test claim with the given text in the given fields."""
    claim = yaml.safe_load(CLAIM_YAML)
    claim["checked_on"] = "2026-01-16"
    get = values.get
    claim["question"] = get("question", claim["question"])
    claim["topics"] = [get("topic", "Sky")]
    claim["claimant"] = get("claimant", "Someone")
    claim["author"] = get("author", "Writer")
    claim["summary"] = get("summary", claim["summary"])
    claim["sections"][0] = {"heading": get("heading", "Why"), "body": get("body", "Body.")}
    claim["limitations"] = [get("limitation", "Limited.")]
    claim["follow_up"] = [get("follow_up", "Why?")]
    claim["appeared"] = {"where": get("where", "TV")}
    source = claim["sources"]["survey"]
    source["title"] = get("title", source["title"])
    source["publisher"] = get("publisher", source["publisher"])
    claim["figures"]["clear"]["display"] = get("display", "300")
    text: str = yaml.safe_dump(claim, allow_unicode=True, sort_keys=False)
    return text.replace("'2026-01-16'", "2026-01-16")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), hostile_text, min_size=1, max_size=4))
def test_any_text_in_any_field_gives_a_located_error_or_a_safe_site(values: dict[str, str]
                                                                    ) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "claims").mkdir()
        (root / "site.yaml").write_text(SITE_YAML)
        (root / "claims" / "x.yaml").write_text(claim_with(values), encoding="utf-8")
        project = gather(root)
        errors = [p for p in project.problems if p.severity == "error"]
        for problem in errors:
            assert LOCATED.match(str(problem)), str(problem)
            assert problem.line >= 1, str(problem)
        if errors:
            return
        plan = plan_site(project)
        for name, data in plan.items():
            text = bytes(data).decode("utf-8")
            if name.endswith(".html"):
                assert html_problems(name, text) == []
            elif name.endswith(".json"):
                assert json_problems(name, text) == []
            elif name.endswith(".xml"):
                assert xml_problems(name, text) == []



@BOUNDED
@given(st.one_of(st.text(max_size=80), st.text(st.characters(max_codepoint=127), max_size=80)))
def test_slugify_takes_a_shortcut_for_ascii_only_where_it_changes_nothing(text: str) -> None:
    """`listing.slugify` skips NFKD folding for ASCII names; the long way round agrees."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:60].strip("-")
    slug += "-topic" if slug in WINDOWS_DEVICES else ""
    assert listing.slugify(text) == (slug or "t-" + hashlib.sha256(text.encode()).hexdigest()[:10])


NUMBERISH = ["1", "12", "2024", "3.5", ".5", "1,234", "63,892.5", "$", "€ ", "%", " percent",
             " million", "-", "–", "a-", "A", ",", ".", ":", "/", "\\", " ", "\n", "x", "(", ")"]


@BOUNDED
@given(st.lists(st.one_of(st.sampled_from(NUMBERISH), st.text(max_size=3)), max_size=30)
       .map("".join))
def test_the_typed_number_pattern_finds_what_it_did_without_its_lookahead(text: str) -> None:
    """`lint._NUMBER` starts with a lookahead for where a number can start, so the regex
    engine skips the other places; without it, it finds the same numbers."""
    plain = re.compile(lint._NUMBER.pattern.removeprefix(r"(?=[$€£¥.\d])"))
    assert plain.pattern != lint._NUMBER.pattern
    assert [m.span() for m in lint._NUMBER.finditer(text)] == [
        m.span() for m in plain.finditer(text)
    ]


_few = st.sampled_from(["", "a", "b", "claims/a.yaml"])
problems = st.lists(st.builds(
    Problem, _few, st.integers(0, 3), st.integers(0, 3), _few, _few,
    st.sampled_from(["error", "warning"]), _few, _few))


@given(problems)
def test_problems_are_ordered_as_sorted_orders_them_once_each(found: list[Problem]) -> None:
    assert ordered(found) == sorted(set(found))
