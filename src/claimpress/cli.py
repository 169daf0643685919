"""The command line: each command parses its arguments, calls one library function, and
turns problems into messages and exit codes. No logic lives here."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from .load import BUILD_DIR, THEME_DIR, no_claim
from .problems import OutputError, Problem, ProblemsFound, SettingError, errors, ordered
from .project import Project, gather, require_clean

app = typer.Typer(
    help="claimpress turns YAML claim files into executive-summary fact-check pages "
    "and builds them into a static site.",
    no_args_is_help=True,
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class State:
    """Options shared by every command."""

    project: Path = Path(".")


@app.callback()
def _options(
    ctx: typer.Context,
    project: Annotated[
        Path,
        typer.Option("--project", "-C", help="The project folder (with site.yaml and claims/)."),
    ] = Path("."),
    version: Annotated[
        bool,
        typer.Option("--version", help="Print claimpress's version and exit.", is_eager=True),
    ] = False,
) -> None:
    if version:
        from . import __version__

        typer.echo(f"claimpress {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    State.project = project


class ExportFormat(StrEnum):
    text = "text"
    md = "md"
    json = "json"
    html = "html"


class ReportFormat(StrEnum):
    text = "text"
    json = "json"


def fail(message: str) -> NoReturn:
    """Print an error and exit 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _waiting(out: Path) -> None:
    """Say why a command writing `out` has not finished: another is writing it."""
    typer.echo(
        f"waiting for another claimpress writing {os.path.relpath(out)}/ to finish", err=True
    )


def report(problems: Sequence[Problem]) -> None:
    """Print problems like a compiler, then a one-line count."""
    if problems:
        n_errors = len(errors(problems))
        count = f"{n_errors} error(s), {len(problems) - n_errors} warning(s)"
        typer.echo("\n".join([*map(str, problems), count]), err=True)  # (one write)


@contextmanager
def handled() -> Iterator[None]:
    """Turn every expected failure into a message and exit 1; never show a traceback for input."""
    try:
        yield
    except ProblemsFound as exc:
        report(exc.problems)
        raise typer.Exit(1) from None
    except (OutputError, SettingError) as exc:
        fail(str(exc))
    except Exception as exc:
        # A template error can only come from Jinja once it is imported: `check`, which
        # renders nothing, does not import it. (Jinja's TemplateNotFound is an OSError too.)
        jinja2 = sys.modules.get("jinja2")
        if jinja2 is not None and isinstance(exc, jinja2.TemplateError):
            from .render import template_error

            fail(template_error(exc))
        if isinstance(exc, OSError):
            fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        raise


def load() -> Project:
    """The project named by --project, loaded and resolved."""
    return gather(State.project)


@app.command()
def check(
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
    format: Annotated[
        ReportFormat, typer.Option("--format", help="text for people, json for machines.")
    ] = ReportFormat.text,
) -> None:
    """Validate every claim, source and figure, and lint them (and compile the project's own
    templates); write nothing.

    Exit 1 on errors (or on warnings with --strict). Each lint warning ends with its rule
    name, such as [untraced-number]; silence one in the claim file under `lint: ignore:`
    with a reason. Dates are judged as of today (set CLAIMPRESS_NOW=2026-02-01 to change it).
    """
    with handled():
        project: Project | None = None
        try:
            project = gather(State.project, render=False)
            problems = list(project.problems)
            if (project.root / THEME_DIR).is_dir():  # else Jinja need not even be loaded
                from .render import theme_problems

                problems = ordered(problems + theme_problems(project.root, project.site))
        except ProblemsFound as exc:
            problems = exc.problems
        if format is ReportFormat.json:
            typer.echo(json.dumps([p.as_json() for p in problems], indent=2))
        else:
            report(problems)
        bad = problems if strict else errors(problems)
        if bad:
            raise typer.Exit(1)
        if format is ReportFormat.text and project is not None:
            checked = sum(1 for s in project.summaries if s.slug is not None)
            typer.echo(f"ok: {checked} claim(s) checked")


@app.command()
def build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the site.")] = Path(
        BUILD_DIR
    ),
    drafts: Annotated[
        bool, typer.Option("--drafts", help="Include drafts and claims in review, marked DRAFT.")
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
) -> None:
    """Build the static site; a failed build leaves the previous one untouched, and a
    second build to the same folder waits for the first.

    Settings from the environment: CLAIMPRESS_JOBS=N (worker processes; default one per
    core), CLAIMPRESS_NO_CACHE=1 (build without .claimpress-cache/) and
    CLAIMPRESS_SEARCH_SHARD_PAGES=N (claims per search index shard; default 1000), as in
    `CLAIMPRESS_SEARCH_SHARD_PAGES=500 claimpress build`.
    """
    from .site import build as build_site

    with handled():
        started = time.perf_counter()
        project = load()
        require_clean(project, strict=strict)
        report(project.problems)
        out_dir = out if out.is_absolute() else State.project / out
        result = build_site(
            project,
            out_dir,
            drafts=drafts,
            waiting=partial(_waiting, out_dir),
        )
        elapsed = time.perf_counter() - started
        typer.echo(
            f"built {result.claims} claim(s), {result.files} file(s) in "
            f"{os.path.relpath(result.out)} ({elapsed:.2f} s)"
        )


@app.command()
def serve(
    port: Annotated[
        int, typer.Option("--port", "-p", help="The port on 127.0.0.1 (0: any free port).")
    ] = 8000,
) -> None:
    """Preview the site with drafts on localhost; rebuild and reload the page on every change.

    The preview is kept in .claimpress-cache/serve/, so the next serve writes only what
    changed; the first one hard-links the files that build/ (claimpress build) has alike.

    Example: claimpress serve --port 8000, then open http://127.0.0.1:8000/
    """
    from .serve import serve as run

    with handled():
        run(State.project, port=port)


@app.command()
def export(
    claim: Annotated[str, typer.Argument(help="The claim: its slug or its file.")],
    format: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="Output format.")
    ] = ExportFormat.text,
) -> None:
    """Print one claim to standard output as text, Markdown, JSON or HTML."""
    from .render import Renderer

    with handled():
        project = load()
        site_file = project.show(project.site_file.rel)
        broken_site = [p for p in errors(project.problems) if p.path == site_file]
        if broken_site:
            raise ProblemsFound(broken_site)
        try:
            page = project.without_locations().page(claim)  # only this page is loaded
        except KeyError:
            broken = [p for p in project.problems if Path(p.path).stem == Path(claim).stem]
            if broken:
                raise ProblemsFound(broken) from None
            fail(no_claim(claim, [p.slug for p in project.pages]))
        renderer = Renderer(project.root, project.site)
        outputs: dict[ExportFormat, Callable[[], str]] = {
            ExportFormat.text: lambda: renderer.claim_text(page),
            ExportFormat.md: lambda: renderer.claim_markdown(page),
            ExportFormat.json: lambda: renderer.claim_json(page),
            ExportFormat.html: lambda: renderer.claim_html(
                page, root="", draft=page.claim.status != "published"
            ),
        }
        sys.stdout.write(outputs[format]())
        sys.stdout.flush()


@app.command()
def new(
    question: Annotated[
        str | None,
        typer.Argument(metavar="QUESTION", help="The question the claim answers; its page title."),
    ] = None,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", "-t", help="A topic; repeat for several.")
    ] = None,
    slug: Annotated[
        str | None,
        typer.Option("--slug", help="The file name, instead of one made from the question."),
    ] = None,
    from_follow_up: Annotated[
        str | None,
        typer.Option(
            "--from-follow-up",
            help="Answer an open follow-up, given by its text or its number in --list-follow-ups; "
            "copies the asking claims' topics.",
        ),
    ] = None,
    list_follow_ups: Annotated[
        bool, typer.Option("--list-follow-ups", help="List the open follow-ups, numbered.")
    ] = False,
) -> None:
    """Start a claim: write claims/<slug>.yaml, a draft with today's date, the question and a
    commented skeleton of every field. Never replaces a file.

    Example: claimpress new "How many tips led to arrests?" --topic NCMEC
    """
    from .scaffold import ScaffoldError, follow_ups, new_claim, open_follow_up

    with handled():
        topics = list(topic or [])
        try:
            if list_follow_ups:
                for line in follow_ups(load()):
                    typer.echo(line)
                return
            if from_follow_up is not None:
                if question is not None:
                    fail("give the question or --from-follow-up, not both")
                question, asked = open_follow_up(load(), from_follow_up)
                topics = asked + [t for t in topics if t not in asked]
            if question is None:
                fail('give the question: claimpress new "QUESTION?"')
            path = new_claim(State.project, question, topics=topics, slug=slug)
        except ScaffoldError as exc:
            fail(str(exc))
        typer.echo(f"wrote {os.path.relpath(path)}; fill it in, then run `claimpress check`")


@app.command("import")
def import_(
    articles: Annotated[
        list[Path],
        typer.Argument(
            metavar="ARTICLE",
            help="Article files in the house text format, or folders of .txt files.",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write the claim files (default: claims/)."),
    ] = None,
) -> None:
    """Turn articles in the house text format into draft claim files.

    Each article must come back exactly from `claimpress export CLAIM --format text`;
    one that would not, or does not parse, is reported as path:line:col and not written.
    Its [n] markers cite placeholder sources source-n, to fill in. Never replaces a file.

    Example: claimpress import article.txt
    """
    from .importer import import_articles

    with handled():
        project = load()
        out_dir = None if out is None else out if out.is_absolute() else State.project / out
        written, problems = import_articles(project, articles, out_dir)
        for imported in written:
            typer.echo(f"imported {imported.article} -> {os.path.relpath(imported.path)}")
        report(problems)
        if errors(problems):
            raise typer.Exit(1)


@app.command()
def submit(
    claim: Annotated[str, typer.Argument(help="The claim: its slug or its file.")],
) -> None:
    """Send a draft for review: its status line becomes `status: review` (the rest of the
    file is untouched). Refused for a claim with errors.

    Example: claimpress submit what-percentage-of-tips-does-ncmec-actually-pursue
    """
    from . import approvals

    with handled():
        try:
            signed = approvals.submit(load(), claim)
        except approvals.ApprovalError as exc:
            report(exc.problems)
            fail(str(exc))
        typer.echo(f"{os.path.relpath(signed.path)}: status: review; next: claimpress review")


@app.command()
def approve(
    claim: Annotated[str, typer.Argument(help="The claim: its slug or its file.")],
    by: Annotated[str, typer.Option("--by", help="Who approves it (the editor's name).")],
    note: Annotated[
        str | None, typer.Option("--note", help="A note kept with the approval.")
    ] = None,
) -> None:
    """Approve a claim in review, or the edit of a published claim: record who and when
    with a hash of its content (shared sources and figures included) in
    approvals/<slug>.json, and set `status: published`. Refused for a claim with errors.

    Example: claimpress approve what-percentage-of-tips-does-ncmec-actually-pursue --by "A. Editor"
    """
    from . import approvals, clock

    with handled():
        try:
            signed = approvals.approve(load(), claim, by, note, clock.now())
        except approvals.ApprovalError as exc:
            report(exc.problems)
            fail(str(exc))
        assert signed.approval is not None
        typer.echo(
            f"{os.path.relpath(signed.path)}: approved by {by.strip()} "
            f"({signed.content_hash[:19]}); status: published; "
            f"recorded in {os.path.relpath(signed.approval)} (commit it with the claim)"
        )


@app.command()
def review(
    claims: Annotated[
        list[str] | None,
        typer.Argument(
            help="Claims to review (slugs or files); default: every draft, every "
            "claim in review and every published claim changed since its approval."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the bundle.")] = Path(
        "review"
    ),
) -> None:
    """Write the review bundle: each claim as it will be published, beside its checklist of
    findings, its figures with their derivations, its citations and its changes since the
    last approval. Open review/index.html in a browser.

    Example: claimpress review && xdg-open review/index.html
    """
    from .review import ReviewError, summary_lines, write_review

    with handled():
        project = load()
        out_dir = out if out.is_absolute() else State.project / out
        try:
            bundle = write_review(project, out_dir, list(claims or []), partial(_waiting, out_dir))
        except ReviewError as exc:
            fail(str(exc))
        for line in summary_lines(bundle):
            typer.echo(line)
        typer.echo(
            f"wrote the review of {len(bundle.sheets)} claim(s) to "
            f"{os.path.relpath(out_dir / 'index.html')}"
        )


class SchemaName(StrEnum):
    claim = "claim"
    sources = "sources"
    figures = "figures"
    site = "site"


@app.command()
def schema(
    name: Annotated[
        SchemaName, typer.Argument(help="Which files: claim, sources, figures or site.")
    ] = SchemaName.claim,
) -> None:
    """Print the JSON Schema of claim files (or of sources/, figures/, site.yaml), for
    editors and validators: `claimpress schema > schema/claim.schema.json`."""
    from .schema import schema_json

    sys.stdout.write(schema_json(name.value))


def main() -> None:
    """Entry point: run the app; an unexpected failure is reported without a traceback."""
    try:
        app()
    except (KeyboardInterrupt, BrokenPipeError):
        raise SystemExit(130) from None
    except Exception as exc:  # a bug of ours, never the user's input
        if os.environ.get("CLAIMPRESS_DEBUG"):
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "this is a bug in claimpress; rerun with CLAIMPRESS_DEBUG=1 for details",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
