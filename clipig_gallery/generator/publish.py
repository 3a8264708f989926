"""Publishing the built site to a ``gh-pages`` branch with plain git.

The site folder becomes the tree of one new commit on the branch, on top
of the remote's current tip, and is pushed. Nothing in the user's working
tree, index or current branch is touched: the commit is made with a
temporary index and git's plumbing commands. An unchanged site makes no
commit.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from clipig_gallery.core.layout import png_path, record_path
from clipig_gallery.core.paths import METHODS

DEFAULT_REMOTE = "origin"
DEFAULT_BRANCH = "gh-pages"
FALLBACK_IDENTITY = {"name": "clipig-gallery", "email": "clipig-gallery@users.noreply.github.com"}


class PublishError(RuntimeError):
    """Publishing refused or failed; the message says why."""


@dataclass
class PublishResult:
    branch: str
    remote: str
    commit: str | None  # the new commit, None when nothing changed
    parent: str | None
    changes: list[tuple[str, str]] = field(default_factory=list)  # (status, path)
    pushed: bool = False
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _git(args: list[str], cwd: Path, env: dict | None = None, data: str | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **(env or {})}, input=data,
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        said = proc.stderr.strip() or proc.stdout
        if "No space left on device" in said:
            # The repository's disk is full: the same message as any full disk.
            raise OSError(errno.ENOSPC, f"git {args[0]}: {said}", str(cwd))
        raise PublishError(f"git {' '.join(args)} failed: {said}")
    return proc.stdout.strip()


_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*")


def _branch_problem(branch: str) -> str | None:
    """Why git would refuse ``branch`` as a branch name (git check-ref-format's
    rules, with --branch's leading '-'), or None."""
    if not branch or branch.startswith("-"):
        return "empty or starting with '-'"
    if any(ord(c) < 32 or ord(c) == 127 or c in " ~^:?*[\\" for c in branch):
        return "a space, control character or one of ~ ^ : ? * [ \\"
    if ".." in branch or "@{" in branch or "//" in branch:
        return "'..', '@{' or '//'"
    if branch.startswith("/") or branch.endswith(("/", ".")):
        return "starting with '/' or ending with '/' or '.'"
    if any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/")):
        return "a part starting with '.' or ending with '.lock'"
    return None


def check_target(remote: str, branch: str, cname: str | None) -> None:
    """Refuse, before anything is built or run, a remote, branch or CNAME that git
    or GitHub Pages could not use (a remote or branch starting with '-' would
    reach git as an option)."""
    if not remote or remote.startswith("-") or any(c.isspace() or ord(c) < 32 for c in remote):
        raise PublishError(f"remote {remote!r}: give the name of one of the repository's git "
                           "remotes, as `git remote` lists them")
    problem = _branch_problem(branch)
    if problem:
        raise PublishError(f"branch {branch!r}: not a branch name git accepts ({problem})")
    if cname is not None and not _HOST.fullmatch(cname.strip()):
        raise PublishError(f"cname {cname!r}: give a host name such as gallery.example.org, "
                           "without https:// or a path")


def _identity_env(repo: Path) -> dict:
    """Author and committer for the commit; a fallback where git has none set."""
    env = {}
    for key, var in (("name", "NAME"), ("email", "EMAIL")):
        try:
            _git(["config", f"user.{key}"], repo)
        except PublishError:
            env[f"GIT_AUTHOR_{var}"] = env[f"GIT_COMMITTER_{var}"] = FALLBACK_IDENTITY[key]
    return env


def _remote_tip(repo: Path, remote: str, branch: str) -> str | None:
    """Fetch the remote's branch if it has one; its commit, else None."""
    line = _git(["ls-remote", "--heads", remote, branch], repo)
    if not line:
        return None
    _git(["fetch", "--quiet", remote, f"refs/heads/{branch}"], repo)
    return line.split()[0]


def _local_tip(repo: Path, branch: str) -> str | None:
    try:
        return _git(["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], repo) or None
    except PublishError:
        return None


def _site_tree(repo: Path, site: Path, cname: str | None) -> str:
    """Write the site folder (plus .nojekyll and CNAME) as a git tree; its id."""
    git_dir = Path(_git(["rev-parse", "--absolute-git-dir"], repo))
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(site),
               "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        # -f: a user's global ignore rules must not drop parts of the site.
        _git(["add", "--all", "--force", "."], site, env)
        extras = {".nojekyll": ""}
        if cname:
            extras["CNAME"] = cname.strip() + "\n"
        for name, content in extras.items():
            blob = _git(["hash-object", "-w", "--stdin"], site, env, data=content)
            _git(["update-index", "--add", "--cacheinfo", f"100644,{blob},{name}"], site, env)
        return _git(["write-tree"], site, env)


def _changes(repo: Path, parent: str | None, tree: str) -> list[tuple[str, str]]:
    if parent is None:
        listing = _git(["ls-tree", "-r", "--name-only", tree], repo)
        return [("A", path) for path in listing.splitlines() if path]
    diff = _git(["diff-tree", "-r", "--name-status", "--no-renames", parent, tree], repo)
    return [tuple(line.split("\t", 1)) for line in diff.splitlines() if line]


def publish_site(
    site: Path,
    repo: Path = Path("."),
    remote: str = DEFAULT_REMOTE,
    branch: str = DEFAULT_BRANCH,
    cname: str | None = None,
    message: str | None = None,
    dry_run: bool = False,
) -> PublishResult:
    """Commit ``site`` to ``branch`` on top of the remote's tip and push it."""
    check_target(remote, branch, cname)
    site, repo = Path(site).resolve(), Path(repo).resolve()
    if not (site / "index.html").is_file():
        raise PublishError(f"nothing to publish: {site}/index.html does not exist")
    try:
        _git(["rev-parse", "--git-dir"], repo)
    except PublishError:
        raise PublishError(
            f"{repo} is not in a git repository: publish commits the site to a branch of the "
            f"repository it runs in and pushes that branch to a remote of it ({remote!r}); "
            "run it inside your clone") from None
    _git(["remote", "get-url", remote], repo)  # a clear error for an unknown remote
    parent = _remote_tip(repo, remote, branch) or _local_tip(repo, branch)
    tree = _site_tree(repo, site, cname)
    changes = _changes(repo, parent, tree)
    result = PublishResult(branch, remote, None, parent, changes, dry_run=dry_run)
    if not changes or dry_run:
        return result
    args = ["commit-tree", tree, "-m", message or "Publish the gallery site"]
    if parent:
        args[2:2] = ["-p", parent]
    result.commit = _git(args, repo, _identity_env(repo))
    _git(["update-ref", f"refs/heads/{branch}", result.commit], repo)
    _git(["push", "--quiet", remote, f"{result.commit}:refs/heads/{branch}"], repo)
    result.pushed = True
    return result


def missing_renders(cache: Path, stems: list[str], methods=METHODS) -> dict[int, int]:
    """How many prompts lack a finished render (PNG and record), per method."""
    missing = {}
    for method in methods:
        pngs = [png_path(cache, method, s) for s in stems]
        missing[method] = sum(not (p.is_file() and record_path(p).is_file()) for p in pngs)
    return missing


def publish_gallery(
    cache: Path,
    out: Path,
    remote: str = DEFAULT_REMOTE,
    branch: str = DEFAULT_BRANCH,
    cname: str | None = None,
    base_url: str = "/",
    allow_missing: bool = False,
    dry_run: bool = False,
    repo: Path = Path("."),
) -> tuple[PublishResult, list[str]]:
    """Build (incrementally), refuse a broken or incomplete site, then publish it."""
    from clipig_gallery.core.prompts import load_prompts

    from .site import BuildError, build_site

    check_target(remote, branch, cname)
    if not Path(cache).is_dir():
        raise PublishError(f"cache folder {cache} not found: render first")
    stems = [p.stem for p in load_prompts()]
    missing = missing_renders(cache, stems)
    if any(missing.values()) and not allow_missing:
        counts = ", ".join(f"method {m}: {n}" for m, n in missing.items() if n)
        raise PublishError(
            f"{sum(missing.values())} of {2 * len(stems)} renders are missing from {cache} "
            f"({counts}); render them (`make render`) or pass --allow-missing"
        )
    try:
        # The build is incremental: a site that is up to date is left as it is.
        report = build_site(Path(cache), Path(out), base_url)
    except BuildError as exc:
        raise PublishError(f"the site is broken, not publishing: {exc}") from None
    lines = list(report.lines())
    result = publish_site(out, repo, remote, branch, cname, dry_run=dry_run)
    if not result.changes:
        lines.append(f"{remote}/{branch} already holds this site: nothing to publish")
    elif dry_run:
        lines.append(f"dry run: would commit {len(result.changes)} changed files to "
                     f"{remote}/{branch} (nothing pushed):")
        lines += [f"  {status} {path}" for status, path in result.changes[:30]]
        if len(result.changes) > 30:
            lines.append(f"  ... and {len(result.changes) - 30} more")
    else:
        lines.append(f"published {len(result.changes)} changed files to {remote}/{branch} "
                     f"as {result.commit[:10]}")
    return result, lines
