"""Approvals: an editor's sign-off, bound to the exact content of a claim.

`claimpress approve` records who approved a claim, when, and a hash of the claim and of
every shared source and figure it draws on, with a snapshot of all of them, in
`approvals/<slug>.json` (committed with the project). The snapshot lets `build` keep
publishing the approved version while a later edit waits for its own approval.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .load import ClaimFile, RegistryFile, no_claim, parse_model, slug_of
from .model import Claim, Figure, Site, Source, Status
from .problems import CHANGED, Problem
from .resolve import Page, Registry, build_registry, resolve_claim
from .yamltree import Node

if TYPE_CHECKING:
    from .project import Project

APPROVALS_DIR = "approvals"
APPROVAL_MAX_BYTES = 16_000_000
"""An approval file holds a claim file (a megabyte at most) and the shared entries it draws
on; anything past this is refused unread."""


class ApprovalError(Exception):
    """A claim cannot be submitted or approved; the message says why, `problems` what."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    approved_by: str
    approved_at: str
    note: str | None = None
    content_hash: str


class _Snapshot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    claim_file: str
    sources: dict[str, Source]
    figures: dict[str, Figure]


class _File(_Record):
    claim: str
    snapshot: _Snapshot
    history: list[_Record] = []


@dataclass(frozen=True)
class Approval:
    """The latest approval of one claim. What was approved (`snapshot`) is read from its
    file when needed: only for a claim edited since."""

    slug: str
    by: str
    at: dt.datetime
    note: str | None
    content_hash: str
    history: tuple[dict[str, Any], ...]
    """Earlier approvals of the claim, newest first."""
    path: str = field(kw_only=True)
    """The approval file, relative to the project's root (`approvals/<slug>.json`)."""
    digest: str = field(kw_only=True, compare=False)
    """A hash of the approval file's bytes, whence all the rest: what the caches know the
    approval by (its `repr`, snapshot and all, cost 0.1 ms an approval in every run)."""
    file: Path = field(kw_only=True, compare=False)
    """The approval file."""

    @property
    def known(self) -> str:
        """What the caches know the approval by: its file and a hash of its bytes."""
        return f"{self.path}\0{self.digest}"

    @property
    def when(self) -> str:
        """The approval's date, for messages: `2026-02-01`."""
        return self.at.date().isoformat()

    def snapshot(self) -> _Snapshot | None:
        """What was approved: the claim file's text and the shared sources and figures it drew
        on, read again from the approval file; None if the file no longer holds the bytes
        this approval was read from. (Every snapshot read and validated in every run cost a
        second at 10,000 approved claims; a build needs those of claims edited since.)"""
        try:
            data = self.file.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != self.digest:
            return None
        return _File.model_validate_json(data).snapshot


def used_entries(page: Page, registry: Registry) -> tuple[dict[str, Source], dict[str, Figure]]:
    """The shared sources and figures a page draws on: cited sources, figures shown or
    feeding a formula, and the sources of those figures."""
    figures = {f.name: registry.figures[f.name].item for f in page.figures if f.shared}
    keys = {s.key for s in page.sources if s.shared}
    keys |= {f.source for f in page.figures if f.source and f.source not in page.claim.sources}
    sources = {k: registry.sources[k].item for k in sorted(keys) if k in registry.sources}
    return sources, dict(sorted(figures.items()))


def content_hash(page: Page, registry: Registry) -> str:
    """sha256 over canonical JSON of the claim (all but its status) and the shared entries it
    draws on; templates and site settings are not content."""
    sources, figures = used_entries(page, registry)
    payload = {
        "slug": page.slug,
        "claim": page.claim.model_dump(mode="json", exclude={"status"}, exclude_defaults=True),
        "sources": {
            k: v.model_dump(mode="json", exclude_defaults=True) for k, v in sources.items()
        },
        "figures": {
            k: v.model_dump(mode="json", exclude_defaults=True) for k, v in figures.items()
        },
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


Read = tuple[str, str, dt.datetime, str | None, str, tuple[dict[str, Any], ...]]
"""What an approval file says but its snapshot: the first fields of `Approval`."""


def read_approval(data: bytes, rel: str, slug: str) -> Read | Problem:
    """The approval of the claim `slug` in the file `rel` holding `data`, validated whole
    (snapshot too), or the problem that makes it unusable."""
    if len(data) > APPROVAL_MAX_BYTES:
        limit = f"{APPROVAL_MAX_BYTES:,} bytes"
        return Problem(
            rel, 0, 0, "", f"file is larger than {limit}, the limit for an approval file"
        )
    try:
        record = _File.model_validate_json(data)
    except ValidationError as exc:
        return Problem(rel, 0, 0, "", f"not a claimpress approval file: {exc.errors()[0]['msg']}")
    if record.claim != slug:
        return Problem(rel, 0, 0, "claim", f"approval of `{record.claim}` in {Path(rel).name}")
    try:
        at = dt.datetime.fromisoformat(record.approved_at.replace("Z", "+00:00"))
    except ValueError:
        return Problem(rel, 0, 0, "approved_at", "not an ISO date and time")
    history = tuple(r.model_dump() for r in record.history)
    return record.claim, record.approved_by, at, record.note, record.content_hash, history


def approved_page(approval: Approval, site: Site) -> tuple[Page | None, list[Problem]]:
    """The approved version of a claim, rebuilt from its snapshot alone; a snapshot that no
    longer resolves or whose hash does not match (or an approval file changed since it was
    read) is a problem, never published."""
    snapshot = approval.snapshot()
    if snapshot is None:
        return None, [Problem(approval.path, 0, 0, "", CHANGED)]
    data = snapshot.claim_file.encode("utf-8")
    claim, root, _ = parse_model(data, approval.path, Claim)
    if claim is None or root is None:
        return None, [_broken(approval, "its snapshot no longer loads")]
    file = ClaimFile(
        approval.path, root, approval.slug, claim, hashlib.sha256(data).hexdigest(), data
    )
    shared = RegistryFile(approval.path, Node({}, 0, 0), snapshot.sources, snapshot.figures)
    registry, found = build_registry([shared])
    page, found2 = resolve_claim(file, registry, site)
    if page is None or any(p.severity == "error" for p in found + found2):
        return None, [_broken(approval, "its snapshot no longer resolves")]
    if content_hash(page, registry) != approval.content_hash:
        return None, [_broken(approval, "its snapshot does not match its content_hash")]
    return page, []


def _broken(approval: Approval, why: str) -> Problem:
    return Problem(
        approval.path,
        0,
        0,
        "",
        f"approval of `{approval.slug}` cannot be used: {why}; approve the claim again",
    )


def snapshot_claim(approval: Approval) -> Claim | None:
    """The claim model as approved, or None when the snapshot does not load."""
    snapshot = approval.snapshot()
    if snapshot is None:
        return None
    claim, _, _ = parse_model(snapshot.claim_file.encode("utf-8"), approval.path, Claim)
    return claim if isinstance(claim, Claim) else None


_STATUS = re.compile(r"""(["']?)(draft|review|published)\1(?=\s*(?:#.*)?$)""")


def set_status(file: ClaimFile, status: Status, name: str) -> bytes:
    """The claim file's bytes with its status line changed in place; the rest of the file,
    comments and layout included, is untouched. Messages call the file `name`."""
    bom = b"\xef\xbb\xbf" if file.data.startswith(b"\xef\xbb\xbf") else b""
    lines = file.data[len(bom) :].decode("utf-8").splitlines(keepends=True)
    entries = file.root.value
    assert isinstance(entries, dict)
    if "status" in entries:
        node = entries["status"].value
        line = lines[node.line - 1]
        end = line.rstrip("\r\n")
        match = _STATUS.match(end, node.col - 1)
        if match is None:
            raise ApprovalError(
                f"{name}:{node.line}:{node.col}: cannot edit the status line; "
                f"write `status: {status}` there by hand"
            )
        lines[node.line - 1] = (
            end[: match.start()]
            + match[1]
            + status
            + match[1]
            + end[match.end() :]
            + line[len(end) :]
        )
    else:
        after = entries["checked_on"].value.line if "checked_on" in entries else 0
        newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
        indent = " " * (entries[next(iter(entries))].key.col - 1) if entries else ""
        if after and not lines[after - 1].endswith(("\n", "\r")):
            lines[after - 1] += newline
        lines.insert(after, f"{indent}status: {status}{newline}")
    data = bom + "".join(lines).encode("utf-8")
    claim, _, _ = parse_model(data, file.rel, Claim)
    if not isinstance(claim, Claim) or claim.model_copy(update={"status": file.claim.status}) != (
        file.claim
    ):
        raise ApprovalError(
            f"{name}: cannot edit the status safely; set `status: {status}` by hand"
        )
    return data


def write_atomic(path: Path, data: bytes) -> None:
    """Replace a file's content in one step (a temporary sibling renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def approval_json(
    page: Page,
    registry: Registry,
    claim_file: bytes,
    by: str,
    at: dt.datetime,
    note: str | None,
    previous: Approval | None,
) -> bytes:
    """The approval file's bytes: the approval, its snapshot and the earlier approvals."""
    sources, figures = used_entries(page, registry)
    history: list[dict[str, Any]] = []
    if previous is not None:
        history = [
            {
                "approved_by": previous.by,
                "approved_at": _iso(previous.at),
                "note": previous.note,
                "content_hash": previous.content_hash,
            },
            *previous.history,
        ]
    data = {
        "claim": page.slug,
        "approved_by": by,
        "approved_at": _iso(at),
        "note": note,
        "content_hash": content_hash(page, registry),
        "snapshot": {
            "claim_file": claim_file.decode("utf-8"),
            "sources": _dump(sources),
            "figures": _dump(figures),
        },
        "history": history,
    }
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _dump(entries: Mapping[str, BaseModel]) -> dict[str, Any]:
    return {k: v.model_dump(mode="json", exclude_none=True) for k, v in entries.items()}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Signed:
    """What `approve` or `submit` did, for the terminal."""

    path: Path
    """The claim file."""
    status: Status
    """The claim's status now."""
    approval: Path | None = None
    """The approval file written, if any."""
    content_hash: str = ""


def shared_files(registry: Registry) -> set[str]:
    """The registry files (under sources/ and figures/) that define shared entries, relative
    to the project's root."""
    files = {e.file.rel for e in registry.sources.values()}
    return files | {e.file.rel for e in registry.figures.values()}


def _claim_for(project: Project, name: str) -> tuple[Page, ClaimFile]:
    """The claim named on the command line, refusing one with errors."""
    slug = slug_of(name)
    found = project.claim(slug)
    if found is None:
        raise ApprovalError(no_claim(name, project.slugs))
    file, page = found
    shown, shared = (
        project.show(file.rel),
        {project.show(r) for r in shared_files(project.registry)},
    )
    broken = [
        p
        for p in project.problems
        if p.severity == "error" and (p.path == shown or p.path in shared)
    ]
    if broken or page is None:
        raise ApprovalError(f"{shown} has errors; fix them first (claimpress check)", broken)
    return page, file


def submit(project: Project, name: str) -> Signed:
    """Move a draft to review, editing its status line in place."""
    page, file = _claim_for(project, name)
    if page.claim.status != "draft":
        hint = (
            "it is already in review; approve it with claimpress approve"
            if page.claim.status == "review"
            else "it is published; edit it, then approve the edit with claimpress approve"
        )
        raise ApprovalError(f"{project.show(file.rel)}: only a draft can be submitted; {hint}")
    path = project.root / "claims" / f"{file.slug}{Path(file.rel).suffix}"
    write_atomic(path, set_status(file, "review", project.show(file.rel)))
    return Signed(path, "review")


def approve(project: Project, name: str, by: str, note: str | None, at: dt.datetime) -> Signed:
    """Approve a claim in review (or an edit of a published one): record who, when and the
    hash of its content with a snapshot in approvals/<slug>.json, and publish it."""
    page, file = _claim_for(project, name)
    if not by.strip() or "\n" in by:
        raise ApprovalError("--by needs the approver's name, on one line")
    if page.claim.status == "draft":
        raise ApprovalError(
            f"{project.show(file.rel)} is a draft; submit it for review first: "
            f"claimpress submit {file.slug}"
        )
    data = (
        file.data
        if page.claim.status == "published"
        else set_status(file, "published", project.show(file.rel))
    )
    folder = project.root / APPROVALS_DIR
    target = folder / f"{file.slug}.json"
    record = approval_json(
        page, project.registry, data, by.strip(), at, note, project.approvals.get(file.slug)
    )
    write_atomic(target, record)
    path = project.root / "claims" / f"{file.slug}{Path(file.rel).suffix}"
    if data != file.data:
        write_atomic(path, data)
    return Signed(path, "published", target, content_hash(page, project.registry))
