"""Fuzz the claim loader and renderer: any bytes as a claim file must give located problems
or pages with no executable markup, and never an exception.

With atheris (`pip install atheris`; coverage-guided, runs until stopped or a crash):

    python fuzz/fuzz_claim.py [-atheris_runs=100000] [corpus_dir]

Without atheris, or with --plain, a plain loop over random mutations of the test corpus
(tests/hostile/, tests/fixtures/invalid/ and a valid claim), seeded and bounded:

    python fuzz/fuzz_claim.py --plain [runs] [seed]

A failure prints the input that caused it and saves it to fuzz/crash-<sha256>.yaml.
This is not part of the test suite.
"""

from __future__ import annotations

import hashlib
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

import yaml  # noqa: E402

from claimpress.load import parse_model  # noqa: E402
from claimpress.model import Claim  # noqa: E402
from claimpress.project import gather  # noqa: E402
from claimpress.site import plan_site  # noqa: E402
from hostile_site import VECTORS, html_problems, json_problems, xml_problems  # noqa: E402

SITE = "title: Fuzz\nbase_url: https://fuzz.example.org/\norganization: Fuzz Desk\n"
VALID = (REPO / "tests" / "conftest.py").read_text().split('CLAIM_YAML = """\\\n')[1]
VALID = VALID.split('"""')[0]
WORK = Path(tempfile.mkdtemp(prefix="claimpress-fuzz-"))
(WORK / "claims").mkdir()
(WORK / "site.yaml").write_text(SITE)


OUTCOMES = {"refused by the loader": 0, "refused when resolved": 0, "rendered": 0}
"""How far the inputs got, reported at the end of a plain run."""


def check_one(data: bytes) -> None:
    """The invariants for one claim file's bytes; raises AssertionError when one breaks."""
    _, _, problems = parse_model(data, "claims/fuzz.yaml", Claim)
    for problem in problems:
        text = str(problem)
        assert text.startswith("claims/fuzz.yaml:") and "\n" not in text, text
    if problems:
        OUTCOMES["refused by the loader"] += 1
        return
    (WORK / "claims" / "fuzz.yaml").write_bytes(data)
    project = gather(WORK)
    if any(p.severity == "error" for p in project.problems):
        for problem in project.problems:
            assert problem.line >= 1 or problem.field == "", str(problem)
        OUTCOMES["refused when resolved"] += 1
        return
    OUTCOMES["rendered"] += 1
    for name, output in plan_site(project, drafts=True).files.items():
        text = output.decode("utf-8")
        found = (html_problems(name, text) if name.endswith(".html")
                 else json_problems(name, text) if name.endswith(".json")
                 else xml_problems(name, text) if name.endswith(".xml") else [])
        assert not found, found


def seeds() -> list[bytes]:
    """The starting corpus: the hostile and invalid fixtures and a valid claim."""
    found = [VALID.encode()]
    for folder in ("tests/hostile/claims", "tests/fixtures/invalid"):
        found += [p.read_bytes() for p in sorted((REPO / folder).glob("*.yaml"))]
    found += [VALID.replace("Is the sky blue?", v.replace('"', "'")).encode() for v in VECTORS]
    return found


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """One random edit: flip, insert, delete, duplicate or splice bytes."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if choice == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif choice == 1:
            data[at:at] = rng.choice([b"{", b"}", b"[@", b"<", b"\n  ", b": ", b"&a ", b"*a",
                                      b"!!", b"\t", b"\xef\xbb\xbf", b"\x00", b"-",
                                      rng.randbytes(rng.randint(1, 8))])
        elif choice == 2 and data:
            del data[at : at + rng.randint(1, 16)]
        elif choice == 3 and data:
            start = rng.randrange(len(data))
            data[at:at] = data[start : start + rng.randint(1, 64)]
        else:
            other = rng.choice(pool)
            data[at:] = other[rng.randrange(len(other) + 1) :]
    return bytes(data)


def structured(rng: random.Random) -> bytes:
    """A valid claim with random text (the XSS corpus, random Unicode, Markdown bits) put
    into a few of its text fields, so that most inputs get as far as the renderer."""
    claim = yaml.safe_load(VALID)
    claim["checked_on"] = "2026-01-16"
    bits = [*VECTORS, "*", "_", "`", "[x](https://e.org/)", "\n\n", "- ", "> ", "# ", "{{",
            "}}", "[@survey]", "{share:.1%}", "&amp;", "&#0;", "\\", "<", "\u202e"]
    targets = [(claim, "question"), (claim, "summary"), (claim["sections"][0], "heading"),
               (claim["sections"][0], "body"), (claim["sections"][1], "body"),
               (claim["sources"]["survey"], "title"), (claim["figures"]["clear"], "display")]
    for obj, key in rng.sample(targets, rng.randint(1, 4)):
        parts = [rng.choice(bits) if rng.random() < 0.6 else
                 "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randint(1, 6)))
                 for _ in range(rng.randint(1, 6))]
        value = "".join(parts)
        if key in ("question", "heading", "display"):
            value = value.replace("\n", " ")
        obj[key] = value
    text: str = yaml.safe_dump(claim, allow_unicode=True, sort_keys=False)
    return text.replace("'2026-01-16'", "2026-01-16").encode("utf-8", "surrogatepass")


def report(data: bytes) -> None:
    """Save the input that broke an invariant, for a regression test."""
    path = HERE / f"crash-{hashlib.sha256(data).hexdigest()[:16]}.yaml"
    path.write_bytes(data)
    print(f"invariant broken by {path} ({len(data)} bytes): {data[:200]!r}", file=sys.stderr)


def plain(runs: int, seed: int) -> None:
    """The fallback fuzzer: random mutations of the seed corpus, `runs` times."""
    rng = random.Random(seed)
    pool = seeds()
    for i in range(runs):
        data = structured(rng) if rng.random() < 0.5 else mutate(rng, rng.choice(pool), pool)
        try:
            check_one(data)
        except Exception:
            report(data)
            raise
        if i % 500 == 0:
            print(f"{i} inputs, no failure", file=sys.stderr)
    print(f"{runs} inputs, no failure (seed {seed}): {OUTCOMES}")


def main() -> None:
    """atheris when installed and not --plain; the plain loop otherwise."""
    args = sys.argv[1:]
    if args[:1] == ["--plain"]:
        plain(int(args[1]) if len(args) > 1 else 5000, int(args[2]) if len(args) > 2 else 0)
        return
    try:
        import atheris
    except ImportError:
        print("atheris is not installed; running the plain loop", file=sys.stderr)
        plain(5000, 0)
        return

    def one_input(data: bytes) -> None:
        try:
            check_one(data)
        except Exception:
            report(data)
            raise

    corpus = HERE / "corpus"
    if not corpus.is_dir():
        corpus.mkdir()
        for i, data in enumerate(seeds()):
            (corpus / f"seed-{i:03d}.yaml").write_bytes(data)
    atheris.instrument_all()  # coverage of claimpress (and its libraries) guides the search
    atheris.Setup([sys.argv[0], *args, str(corpus)], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
