"""Follow-ups: linked to the claim that answers them, else listed on the open-questions page."""

from __future__ import annotations

from pathlib import Path

from claimpress.project import gather
from claimpress.resolve import open_questions
from conftest import CLAIM_YAML, run_cli

ANSWERED = "Is the sky blue?"


def _claim(root: Path, slug: str, question: str, follow_ups: list[str]) -> None:
    text = CLAIM_YAML.replace(f"question: {ANSWERED}", f"question: {question}")
    text += "follow_up:\n" + "".join(f"  - {q}\n" for q in follow_ups)
    (root / "claims" / f"{slug}.yaml").write_text(text)


def test_a_follow_up_matching_a_question_links_to_its_claim(project: Path) -> None:
    _claim(project, "why-is-grass-green", "Why is grass green?",
           ["is the SKY blue", "Why is the sea salty?"])
    pages = {p.slug: p for p in gather(project).published()}
    linked, unlinked = pages["why-is-grass-green"].follow_ups
    assert (linked.slug, linked.target_question) == ("is-the-sky-blue", ANSWERED)
    assert unlinked.slug is None


def test_a_claim_never_links_to_itself(project: Path) -> None:
    _claim(project, "is-the-sky-blue", ANSWERED, ["Is the sky blue?"])
    (page,) = gather(project).published()
    assert page.follow_ups[0].slug is None


def test_open_questions_group_askers_and_skip_answered(project: Path) -> None:
    _claim(project, "a-first", "First?", ["Why is the sea salty?", "Is the sky blue?"])
    _claim(project, "b-second", "Second?", ["why is the sea, salty", "What is rain?"])
    pages = gather(project).published()
    found = open_questions(pages)
    # Pages come newest first (same date: by slug, descending), so b-second words it.
    assert [(q.question, [p.slug for p in q.asked_by]) for q in found] == [
        ("What is rain?", ["b-second"]),
        ("why is the sea, salty", ["b-second", "a-first"]),
    ]


def test_build_writes_the_open_questions_page(project: Path) -> None:
    _claim(project, "a-first", "First?", ["Why is the sea <salty>?", "Is the sky blue?"])
    result = run_cli("build", cwd=project)
    assert result.code == 0, result.err
    page = (project / "build" / "open-questions" / "index.html").read_text()
    assert "<h2>Why is the sea &lt;salty&gt;?</h2>" in page
    assert '<p class="meta">Asked by <a href="../claims/a-first/">First?</a></p>' in page
    assert "Is the sky blue?</h2>" not in page


def test_open_questions_page_when_none_are_open(project: Path) -> None:
    assert run_cli("build", cwd=project).code == 0
    page = (project / "build" / "open-questions" / "index.html").read_text()
    assert "No open questions" in page


def test_000_first_follow_up_links_to_003_on_the_page(example: Path) -> None:
    assert run_cli("build", cwd=example).code == 0
    page = (example / "build" / "claims" / "what-percentage-of-tips-does-ncmec-actually-pursue"
            / "index.html").read_text()
    target = "how-many-cybertipline-escalations-led-to-arrests-or-prosecutions-in-2023"
    assert (f'<li><a href="../../claims/{target}/">How many CyberTipline escalations '
            "(urgent reports) led to arrests or prosecutions in 2023?</a></li>") in page
    open_page = (example / "build" / "open-questions" / "index.html").read_text()
    assert "led to arrests or prosecutions in 2023?</h2>" not in open_page
    assert open_page.count("<h2>") == 5
