"""Generate a realistic claimpress project of N claims, deterministically (fixed seed).

Each claim has a question, a summary, five or six sections of Markdown prose with
citations, eight sources (two of them from the shared registry), figures with formulas
(some shared), limitations, follow-ups (some answered by another claim) and topics:
about 5 KB of YAML, like a real fact-check.

    python benchmarks/generate.py DIR --claims 1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
from pathlib import Path

WORDS = [
    "agency",
    "report",
    "budget",
    "county",
    "district",
    "survey",
    "program",
    "federal",
    "state",
    "annual",
    "rate",
    "record",
    "review",
    "audit",
    "policy",
    "court",
    "school",
    "hospital",
    "police",
    "officer",
    "worker",
    "family",
    "income",
    "price",
    "market",
    "energy",
    "water",
    "housing",
    "transit",
    "election",
    "voter",
    "ballot",
    "census",
    "border",
    "permit",
    "contract",
    "grant",
    "tax",
    "revenue",
    "deficit",
    "debt",
    "pension",
    "benefit",
    "claim",
    "figure",
    "estimate",
    "increase",
    "decline",
    "change",
    "trend",
    "level",
    "share",
    "total",
    "average",
    "median",
    "analysis",
    "data",
    "source",
    "statement",
    "official",
    "spokesperson",
    "document",
    "filing",
    "release",
]
TOPICS = [
    "Budget",
    "Crime",
    "Education",
    "Elections",
    "Energy",
    "Health",
    "Housing",
    "Immigration",
    "Jobs",
    "Taxes",
    "Transit",
    "Water",
    "Climate",
    "Courts",
    "Policing",
    "Pensions",
    "Census",
    "Trade",
    "Agriculture",
    "Technology",
    "Media",
    "Defense",
    "Environment",
    "Infrastructure",
    "Public safety",
    "Welfare",
    "Wages",
    "Inflation",
]
SITE_YAML = """\
title: Benchmark Checks
base_url: https://bench.example.org/
organization: Benchmark Desk
description: Generated fact-checks for measuring build speed.
language: en
disclaimer: >-
  Benchmark Desk can make mistakes. Please verify important information.
  [Learn more](https://bench.example.org/about/).
stale_after_days: 3650
rating_scale:
  - name: Accurate
  - name: Mostly accurate
  - name: Misleading
  - name: Inaccurate
"""
SHARED_SOURCES = 40
SHARED_FIGURES = 30


def sentence(rng: random.Random, extra: str = "") -> str:
    """One sentence of plausible prose, with optional inline Markdown and a token."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]
    if rng.random() < 0.3:
        i = rng.randrange(len(words))
        words[i] = f"**{words[i]}**" if rng.random() < 0.5 else f"*{words[i]}*"
    if rng.random() < 0.1:
        words.append("([details](https://example.org/details))")
    text = " ".join(words)
    return text[0].upper() + text[1:] + (f" {extra}" if extra else "") + "."


def question(i: int) -> str:
    """The question of claim `i`: unique, and stable across runs."""
    rng = random.Random(i * 7919)
    subject = " ".join(rng.choice(WORDS) for _ in range(3))
    return f"Did the {subject} change in district {i} between 2020 and 2024?"


def slug(i: int) -> str:
    """The slug (file name) of claim `i`."""
    rng = random.Random(i * 7919)
    return f"claim-{i:05d}-" + "-".join(rng.choice(WORDS) for _ in range(3))


def indent(text: str, spaces: int) -> str:
    """A folded YAML block body."""
    pad = " " * spaces
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + len(word) > 84:
            lines.append(pad + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(pad + line)
    return "\n".join(lines)


def claim_yaml(i: int, n: int, rng: random.Random) -> str:
    """One claim file."""
    local_sources = [f"src-{i}-{k}" for k in range(6)]
    shared = rng.sample(range(SHARED_SOURCES), 2)
    sources = local_sources + [f"shared-{k}" for k in shared]
    shared_fig = rng.choice(range(SHARED_FIGURES))

    def cite() -> str:
        keys = rng.sample(sources, rng.choice((1, 1, 2)))
        return "[" + "; ".join("@" + k for k in keys) + "]"

    checked = dt.date(2020, 1, 1) + dt.timedelta(days=(i * 37) % 2200)
    figures = {
        "before": (rng.randint(1000, 90000), local_sources[0]),
        "after": (rng.randint(1000, 90000), local_sources[1]),
        "total": (rng.randint(100000, 9000000), local_sources[2]),
    }
    tokens = [
        "({before:,} before)",
        "({after:,} after)",
        "(a change of {change:,})",
        "(about {after_share:.2%} of {total})",
        f"(against {{shared_fig_{shared_fig}:,}} nationally)",
        "(a ratio of {ratio:.1f})",
    ]
    summary = " ".join(sentence(rng, rng.choice(tokens) + " " + cite()) for _ in range(2))
    bodies = []
    n_sections = rng.choice((5, 6))
    for s in range(n_sections):
        sents = [sentence(rng, rng.choice(tokens) + " " + cite()) for _ in range(rng.randint(2, 4))]
        if s == 1:
            items = "\n".join(f"- {sentence(rng)}" for _ in range(3))
            bodies.append(" ".join(sents[:2]) + "\n\n" + items + "\n\n" + " ".join(sents[2:]))
        else:
            bodies.append(" ".join(sents))
    # every source is cited at least once, in the last section
    last = sentence(rng, "[" + "; ".join("@" + k for k in sources) + "]")
    bodies[-1] += " " + last
    follow = [f"How was the {rng.choice(WORDS)} {rng.choice(WORDS)} measured in district {i}?"]
    if i > 0:
        follow.insert(0, question(rng.randrange(max(0, i - 50), i)))
    follow.append(f"What would change the {rng.choice(WORDS)} estimate for district {i}?")
    topics = sorted(set(rng.sample(TOPICS, rng.randint(1, 3))))
    out = [
        f"question: {question(i)}",
        f"checked_on: {checked.isoformat()}",
        f"status: {'draft' if i % 20 == 19 else 'published'}",
        "topics: [" + ", ".join(topics) + "]",
        f"verdict: {rng.choice(['Accurate', 'Mostly accurate', 'Misleading', 'Inaccurate'])}",
        "summary: >-",
        indent(summary, 2),
        "sections:",
    ]
    for s, body in enumerate(bodies):
        heading = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6))).capitalize()
        if s == n_sections - 1:
            heading = "Bottom line"
        out.append(f"  - heading: {heading}")
        out.append("    body: |-" if "\n" in body else "    body: >-")
        if "\n" in body:
            out.extend("      " + line if line else "" for line in body.split("\n"))
        else:
            out.append(indent(body, 6))
    out += ["limitations:", "  - >-", indent(sentence(rng, cite()), 4), "follow_up:"]
    out += [f"  - {q}" for q in follow]
    out.append("figures:")
    for name, (value, source) in figures.items():
        out.append(f"  {name}: {{value: {value}, source: {source}}}")
    out += [
        "  change: {formula: after - before}",
        "  after_share: {formula: after / total}",
        "  ratio: {formula: after / before}",
    ]
    out.append("sources:")
    for k, key in enumerate(local_sources):
        out += [
            f"  {key}:",
            f"    title: {' '.join(rng.choice(WORDS) for _ in range(5)).capitalize()} {k}",
            f"    publisher: {rng.choice(WORDS).capitalize()} {rng.choice(WORDS).capitalize()}",
            f"    published: {(checked - dt.timedelta(days=30 + k)).isoformat()}",
            f"    url: https://example.org/{i}/{key}",
            f"    accessed: {checked.isoformat()}",
            f"    archive_url: https://web.archive.org/web/2024/https://example.org/{i}/{key}",
        ]
    return "\n".join(out) + "\n"


def registry(rng: random.Random) -> tuple[str, str]:
    """The shared sources and figures files."""
    sources, figures = [], []
    for k in range(SHARED_SOURCES):
        sources += [
            f"shared-{k}:",
            f"  title: Shared dataset {k}",
            f"  publisher: {rng.choice(WORDS).capitalize()} Bureau",
            f"  url: https://data.example.org/{k}",
            "  accessed: 2024-01-15",
            f"  archive_url: https://web.archive.org/web/2024/https://data.example.org/{k}",
        ]
    for k in range(SHARED_FIGURES):
        figures += [
            f"shared_fig_{k}:",
            f"  value: {rng.randint(100000, 99000000)}",
            f"  source: shared-{k % SHARED_SOURCES}",
            f"  note: National {rng.choice(WORDS)} {rng.choice(WORDS)}.",
        ]
    return "\n".join(sources) + "\n", "\n".join(figures) + "\n"


def generate(root: Path, n: int, seed: int = 2026) -> None:
    """Write a project of `n` claims at `root` (which must not hold other claims)."""
    rng = random.Random(seed)
    for folder in ("claims", "sources", "figures"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "site.yaml").write_text(SITE_YAML)
    shared_sources, shared_figures = registry(rng)
    (root / "sources" / "shared.yaml").write_text(shared_sources)
    (root / "figures" / "shared.yaml").write_text(shared_figures)
    for i in range(n):
        (root / "claims" / f"{slug(i)}.yaml").write_text(claim_yaml(i, n, rng))


def main() -> None:
    """Command line: `generate.py DIR --claims N`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    generate(args.root, args.claims, args.seed)


if __name__ == "__main__":
    main()
