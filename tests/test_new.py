"""`claimpress new`: a draft claim file that checks clean, never replacing a file."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from claimpress.model import MAX_SLUG
from claimpress.project import _Claims, gather
from claimpress.scaffold import follow_ups, open_follow_up, skeleton, slugify
from conftest import REPO, run_cli
from test_schema import as_json


@pytest.mark.parametrize(("question", "slug"), [
    ("What percentage of tips does NCMEC actually pursue?",
     "what-percentage-of-tips-does-ncmec-actually-pursue"),
    ("Was the café’s “crème brûlée” 50% off in São Paulo?",
     "was-the-cafes-creme-brulee-50-off-in-sao-paulo"),
    ("Почему небо голубое?", "pochemu-nebo-goluboe"),
    ("  --Is   it__true?--  ", "is-it-true"),
    ("???", ""),
])
def test_slugify(question: str, slug: str) -> None:
    assert slugify(question) == slug


def test_a_long_question_is_cut_at_a_word_boundary() -> None:
    question = "How many " + " ".join(["escalations"] * 20) + "?"
    slug = slugify(question)
    assert len(slug) <= MAX_SLUG and len(slug) > MAX_SLUG - len("-escalations")
    assert slug.endswith("-escalations")
    assert slugify("x" * 200) == "x" * MAX_SLUG


def test_new_writes_a_draft_that_checks_clean(project: Path) -> None:
    result = run_cli("new", "Is the sea salty?", "--topic", "Sea", "-t", "Salt: why", cwd=project)
    assert result.code == 0, result.err
    path = project / "claims" / "is-the-sea-salty.yaml"
    assert result.out == ("wrote claims/is-the-sea-salty.yaml; fill it in, "
                          "then run `claimpress check`\n")
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../schema/claim.schema.json\n")
    data = yaml.safe_load(text)
    assert data["question"] == "Is the sea salty?"
    assert data["status"] == "draft"
    assert data["checked_on"] == dt.date.today()
    assert data["topics"] == ["Sea", "Salt: why"]
    check = run_cli("check", cwd=project)
    assert check.code == 0, check.err
    assert "error" not in check.err.replace("0 error(s)", "")
    # Each placeholder left to fill in is a warning at its exact place.
    todo = "warning: `TODO` is still here; write the text it stands for [placeholder]"
    assert [line.split(": ", 2)[:2] for line in check.err.splitlines() if todo in line] == [
        ["claims/is-the-sea-salty.yaml:20:3", "summary"],
        ["claims/is-the-sea-salty.yaml:24:14", "sections[0].heading"],
        ["claims/is-the-sea-salty.yaml:26:7", "sections[0].body"],
        ["claims/is-the-sea-salty.yaml:29:7", "sections[1].body"],
    ]
    # The schema the file names is there, and the file is valid under it.
    schema = json.loads((project / "schema" / "claim.schema.json").read_text())
    assert schema == json.loads((REPO / "schema" / "claim.schema.json").read_text())
    jsonschema.validate(as_json(data), schema)


def test_every_commented_field_is_valid_when_uncommented() -> None:
    """The skeleton's examples are real: uncommented, they still make a valid claim."""
    text = skeleton("Q?", [], dt.date(2026, 1, 16))
    # Field lines are commented as `# key: ...` or `#   ...`; explanations start with a capital.
    uncommented = re.sub(r"^# (?=[a-z_]+:|  )", "", text, flags=re.MULTILINE)
    data = yaml.safe_load(uncommented)
    assert {"verdict", "claimant", "claimant_type", "appeared", "author", "editor",
            "limitations", "follow_up", "figures", "sources", "corrections"} <= set(data)
    from claimpress.model import Claim

    Claim.model_validate(data, strict=False)


def test_new_never_replaces_a_file(project: Path) -> None:
    assert run_cli("new", "Is the sky blue?", cwd=project).code == 1
    before = (project / "claims" / "is-the-sky-blue.yaml").read_bytes()
    result = run_cli("new", "Is the sky blue?", cwd=project)
    assert result.code == 1
    assert result.err == ("error: claims/is-the-sky-blue.yaml already exists; edit it, "
                          "or choose another --slug\n")
    assert (project / "claims" / "is-the-sky-blue.yaml").read_bytes() == before
    assert run_cli("new", "Is the sky blue?", "--slug", "sky-again", cwd=project).code == 0
    assert (project / "claims" / "sky-again.yaml").is_file()


@pytest.mark.parametrize(("args", "error"), [
    (["Is it?", "--slug", "Not A Slug"],
     "error: --slug Not A Slug: the slug must be a slug: lowercase letters, digits and single "
     "hyphens, such as `what-share-of-tips-are-pursued.yaml`\n"),
    (["Is it?", "--slug", "a" * 81],
     "error: --slug " + "a" * 81 + ": the slug is 81 characters; a slug has at most 80\n"),
    (["Line one\nline two?"],
     'error: question "Line one\\nline two?": must be a single line (no line breaks)\n'),
    (["   "], 'error: question "   ": must not be empty\n'),
    (["Is it?", "--topic", ""], 'error: --topic "": must not be empty\n'),
    (["???"], "error: cannot make a file name from '???'; give one with --slug\n"),
    ([], 'error: give the question: claimpress new "QUESTION?"\n'),
])
def test_new_refuses_bad_input_and_writes_nothing(project: Path, args: list[str],
                                                  error: str) -> None:
    result = run_cli("new", *args, cwd=project)
    assert (result.code, result.err) == (1, error)
    assert sorted(p.name for p in (project / "claims").iterdir()) == ["is-the-sky-blue.yaml"]
    assert not (project / "schema").exists()


def test_new_needs_a_project(tmp_path: Path) -> None:
    result = run_cli("new", "Is it?", cwd=tmp_path)
    assert result.code == 1
    assert "no site.yaml in" in result.err and "-C DIR" in result.err
    assert list(tmp_path.iterdir()) == []


def test_new_from_a_follow_up(example: Path) -> None:
    listed = run_cli("new", "--list-follow-ups", cwd=example)
    assert listed.code == 0, listed.err
    c000 = "claims/what-percentage-of-tips-does-ncmec-actually-pursue.yaml"
    c003 = "claims/how-many-cybertipline-escalations-led-to-arrests-or-prosecutions-in-2023.yaml"
    assert listed.out.splitlines()[:4] == [
        "1. How do automated platform detection tools influence the volume and quality of "
        "CyberTipline reports?",
        f"   asked by {c003}",
        "2. How do electronic service providers decide what to report to NCMEC and how does "
        "that affect tip quality?",
        f"   asked by {c000}",
    ]
    result = run_cli("new", "--from-follow-up", "2", "--topic", "ESPs", "--topic", "NCMEC",
                     cwd=example)
    assert result.code == 0, result.err
    slug = ("how-do-electronic-service-providers-decide-what-to-report-to-ncmec-and-how-does")
    data = yaml.safe_load((example / "claims" / f"{slug}.yaml").read_text())
    assert data["question"] == ("How do electronic service providers decide what to report to "
                                "NCMEC and how does that affect tip quality?")
    assert data["topics"] == ["NCMEC", "CyberTipline", "ESPs"]
    # The asking claim now links to the new one (drafts shown), and it is no longer open.
    exported = json.loads(run_cli("export", "what-percentage-of-tips-does-ncmec-actually-pursue",
                                  "--format", "json", cwd=example).out)
    assert exported["follow_up"][1]["slug"] == slug
    assert "tip quality" not in run_cli("new", "--list-follow-ups", cwd=example).out


def test_the_open_follow_ups_are_told_without_loading_a_page(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From what the claims' summaries keep of their pages (`Page.facts`): at 10,000 claims,
    loading every page cost `new --list-follow-ups` about 3 s and 570 MB."""
    assert run_cli("check", cwd=example).code == 0  # (the cache up to date)
    found = gather(example)
    monkeypatch.setattr(_Claims, "entry", None)  # (any page loaded fails)
    assert len(follow_ups(found)) == 5
    assert open_follow_up(found, "2")[1] == ["NCMEC", "CyberTipline"]


def test_new_from_a_follow_up_by_its_text(example: Path) -> None:
    result = run_cli("new", "--from-follow-up",
                     "how many cybertipline escalations resulted in identified victims "
                     "being rescued in 2023", "--slug", "rescues-2023", cwd=example)
    assert result.code == 0, result.err
    data = yaml.safe_load((example / "claims" / "rescues-2023.yaml").read_text())
    assert data["question"] == ("How many CyberTipline escalations resulted in identified "
                                "victims being rescued in 2023?")
    assert data["topics"] == ["NCMEC", "CyberTipline", "Law enforcement"]


@pytest.mark.parametrize(("wanted", "error"), [
    ("99", "error: no open follow-up number 99; there are 5 (list them with "
           "`claimpress new --list-follow-ups`)\n"),
    ("Is the moon cheese?", "error: no claim asks the follow-up 'Is the moon cheese?'; list the "
                            "open ones with `claimpress new --list-follow-ups`\n"),
    ("How many CyberTipline escalations (urgent reports) led to arrests or prosecutions in 2023",
     "error: claims/how-many-cybertipline-escalations-led-to-arrests-or-prosecutions-in-2023.yaml"
     " already answers this question\n"),
])
def test_new_from_a_follow_up_that_is_not_open(example: Path, wanted: str, error: str) -> None:
    result = run_cli("new", "--from-follow-up", wanted, cwd=example)
    assert (result.code, result.err) == (1, error)
