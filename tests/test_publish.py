"""Publishing to gh-pages, against a real bare git repository as the remote."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from click.testing import CliRunner

from clipig_gallery.app.cli import main
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.generator.publish import PublishError, publish_site
from clipig_gallery.generator.sample import write_sample_cache


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def project(tmp_path):
    """A user's clone with a bare repository as origin, and a built site."""
    return make_project(tmp_path)


@pytest.fixture(scope="module")
def unchanged_project(tmp_path_factory):
    """The same, shared by the tests that check it is left as it was."""
    return make_project(tmp_path_factory.mktemp("unchanged"))


def make_project(tmp_path):
    remote = tmp_path / "remote.git"
    git("init", "--quiet", "--bare", str(remote), cwd=tmp_path)
    repo = tmp_path / "project"
    repo.mkdir()
    git("init", "--quiet", "-b", "main", cwd=repo)
    git("remote", "add", "origin", str(remote), cwd=repo)
    (repo / "README.md").write_text("project\n")
    git("add", "README.md", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "init", cwd=repo)
    site = repo / "site"
    for path, content in {
        "index.html": "<a href='2021/clipig-animal-transfer/'>post</a>",
        "2021/clipig-animal-transfer/index.html": "<img src='img/1/cat-of-harp.webp'>",
        "2021/clipig-animal-transfer/img/1/cat-of-harp.webp": "webp-1",
        "2021/clipig-animal-transfer/img/1/dog-of-harp.webp": "webp-2",
        "2021/clipig-animal-transfer/data/snail-of-harp.csv": ",a snail\nx.png,1.0\n",
    }.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(content)
    return repo, remote, site


def remote_tree(remote, tmp_path, name="check"):
    clone = tmp_path / name
    git("clone", "--quiet", "--branch", "gh-pages", str(remote), str(clone), cwd=tmp_path)
    files = sorted(
        str(p.relative_to(clone)) for p in clone.rglob("*") if p.is_file() and ".git" not in p.parts
    )
    return clone, files


def commit_count(remote):
    return int(git("rev-list", "--count", "gh-pages", cwd=remote))


def test_publish_then_change_one_render_then_nothing(project, tmp_path):
    repo, remote, site = project
    first = publish_site(site, repo, cname="gallery.example.org")
    assert first.pushed and first.parent is None
    clone, files = remote_tree(remote, tmp_path)
    assert files == sorted([
        ".nojekyll", "CNAME", "index.html", "2021/clipig-animal-transfer/index.html",
        "2021/clipig-animal-transfer/img/1/cat-of-harp.webp",
        "2021/clipig-animal-transfer/img/1/dog-of-harp.webp",
        "2021/clipig-animal-transfer/data/snail-of-harp.csv",
    ])
    assert (clone / "CNAME").read_text() == "gallery.example.org\n"

    # One render changed: one new commit holding exactly that change.
    (site / "2021/clipig-animal-transfer/img/1/cat-of-harp.webp").write_text("webp-1-new")
    second = publish_site(site, repo, cname="gallery.example.org")
    assert second.parent == first.commit
    assert second.changes == [("M", "2021/clipig-animal-transfer/img/1/cat-of-harp.webp")]
    assert commit_count(remote) == 2
    changed = git("diff", "--name-only", "gh-pages~1", "gh-pages", cwd=remote)
    assert changed == "2021/clipig-animal-transfer/img/1/cat-of-harp.webp"

    # Unchanged: no commit.
    third = publish_site(site, repo, cname="gallery.example.org")
    assert third.commit is None and not third.pushed and not third.changes
    assert commit_count(remote) == 2


def test_users_branch_and_index_are_untouched(project):
    repo, _, site = project
    (repo / "work.txt").write_text("staged\n")
    git("add", "work.txt", cwd=repo)
    publish_site(site, repo)
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo) == "main"
    assert git("diff", "--cached", "--name-only", cwd=repo) == "work.txt"


def test_dry_run_lists_and_pushes_nothing(project):
    repo, remote, site = project
    result = publish_site(site, repo, dry_run=True)
    assert result.dry_run and not result.pushed and result.commit is None
    assert ("A", "index.html") in result.changes and ("A", ".nojekyll") in result.changes
    assert git("branch", "--list", "gh-pages", cwd=remote) == ""


def test_remote_ahead_is_built_upon(project, tmp_path):
    repo, remote, site = project
    first = publish_site(site, repo)
    # Another clone published meanwhile; this one's local branch is stale.
    other = tmp_path / "other"
    git("clone", "--quiet", str(remote), str(other), cwd=tmp_path)
    other_site = tmp_path / "other-site"
    other_site.mkdir()
    (other_site / "index.html").write_text("newer")
    newer = publish_site(other_site, other)
    (site / "index.html").write_text("newest")
    latest = publish_site(site, repo)
    assert latest.parent == newer.commit != first.commit
    assert commit_count(remote) == 3


def test_refusals(project, tmp_path):
    repo, _, site = project
    with pytest.raises(PublishError, match="index.html"):
        publish_site(tmp_path / "empty", repo)
    with pytest.raises(PublishError, match="nowhere"):
        publish_site(site, repo, remote="nowhere")
    outside = tmp_path / "not-a-repository"
    outside.mkdir()
    with pytest.raises(PublishError) as info:
        publish_site(site, outside)
    assert str(info.value) == (
        f"{outside} is not in a git repository: publish commits the site to a branch of the "
        "repository it runs in and pushes that branch to a remote of it ('origin'); run it "
        "inside your clone")


BRANCHES = ["gh-pages", "site/2021", "a.b", "x-y_z", "v1.0", "-x", "--upload-pack=x", "a b",
            "x..y", "a~1", "a^", "a:b", "a?", "a*", "a[b", "a\\b", "/a", "a/", "a//b", "a.",
            ".a", "a/.b", "a.lock", "a/b.lock", "@", "a@{1}", "a@b", "tab\there", ""]


@pytest.mark.parametrize("branch", BRANCHES)
def test_a_branch_is_refused_exactly_when_git_refuses_it(unchanged_project, branch):
    repo, _, site = unchanged_project
    # git itself is the judge of a branch name: as a ref under refs/heads/, and as
    # a branch (no leading '-'; --branch alone would read '@' as the current branch)
    accepted = all(subprocess.run(["git", "check-ref-format", *args], cwd=repo,
                                  capture_output=True).returncode == 0
                   for args in (["--branch", branch], [f"refs/heads/{branch}"]))
    before = git("for-each-ref", cwd=repo)
    if accepted:
        result = publish_site(site, repo, branch=branch, dry_run=True)
        assert result.branch == branch and result.changes
    else:
        with pytest.raises(PublishError, match=f"^branch {re.escape(repr(branch))}: not a "
                                               "branch name git accepts"):
            publish_site(site, repo, branch=branch)
    assert git("for-each-ref", cwd=repo) == before


@pytest.mark.parametrize(("remote", "cname", "message"), [
    ("-x", None, "remote '-x': give the name of one of the repository's git remotes"),
    ("--upload-pack=touch PWNED", None, "remote '--upload-pack=touch PWNED': give the name"),
    ("my remote", None, "remote 'my remote': give the name"),
    ("origin", "https://gallery.example.org", "cname 'https://gallery.example.org': give a "
                                              "host name"),
    ("origin", "gallery.example.org/x", "cname 'gallery.example.org/x'"),
    ("origin", "my gallery", "cname 'my gallery'"),
    ("origin", "-x.example.org", "cname '-x.example.org'"),
])
def test_a_remote_or_cname_git_or_pages_cannot_use_is_refused(unchanged_project, remote, cname,
                                                              message):
    repo, _, site = unchanged_project
    before = git("for-each-ref", cwd=repo)
    with pytest.raises(PublishError, match=f"^{re.escape(message)}"):
        publish_site(site, repo, remote=remote, cname=cname)
    assert not (repo / "PWNED").exists() and git("for-each-ref", cwd=repo) == before
    assert publish_site(site, repo, cname="gallery.example.org", dry_run=True).changes


def test_the_command_refuses_a_bad_branch_before_building(project, tmp_path):
    repo, _, _ = project
    out = tmp_path / "not-built"
    result = _cli_publish(repo, "--cache", tmp_path, "--out", out, "--allow-missing",
                          "--branch", "a b")
    assert result.exit_code == 1 and "branch 'a b': not a branch name git accepts" in result.output
    assert not out.exists()


# --- the whole command: build, check, publish -----------------------------------


PROMPTS = load_prompts()


def _cli_publish(repo, *args):
    cwd = os.getcwd()
    os.chdir(repo)  # publish works on the repository it is run in
    try:
        return CliRunner().invoke(main, ["publish", *map(str, args)], catch_exceptions=False)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def full_cache(tmp_path_factory):
    # Every render of the gallery; histories, the judge and the best of N are
    # beside the point of publishing it (the site tests build them).
    return write_sample_cache(tmp_path_factory.mktemp("cache") / "cache", PROMPTS,
                              best_of=False, judge=False, history=False)


def test_publish_command_full_gallery(project, full_cache, tmp_path):
    repo, remote, _ = project
    result = _cli_publish(repo, "--cache", full_cache, "--out", "site-out", "--base-url", "/g/")
    assert result.exit_code == 0, result.output
    assert "published" in result.output
    clone, files = remote_tree(remote, tmp_path)
    assert ".nojekyll" in files and "index.html" in files
    post = [f for f in files if f.endswith("index.html") and f != "index.html"]
    assert post, files
    assert sum(f.endswith(".webp") for f in files) >= 1620
    assert any(f.endswith(".csv") for f in files)

    # One render changes: one new commit, touching only that render's files.
    png = full_cache / "method-1" / "cat-of-harp.png"
    from PIL import Image

    Image.new("RGB", (224, 224), (200, 10, 10)).save(png)
    again = _cli_publish(repo, "--cache", full_cache, "--out", "site-out", "--base-url", "/g/")
    assert again.exit_code == 0, again.output
    assert commit_count(remote) == 2
    changed = git("diff", "--name-only", "gh-pages~1", "gh-pages", cwd=remote).splitlines()
    assert changed and all("cat-of-harp" in path for path in changed), changed



def test_publish_refuses_missing_renders_unless_told(project, tmp_path):
    repo, remote, _ = project
    cache = write_sample_cache(tmp_path / "small", PROMPTS[:9])
    refused = _cli_publish(repo, "--cache", cache, "--out", "site-small")
    assert refused.exit_code != 0 and "missing" in refused.output and "--allow-missing" in (
        refused.output)
    assert git("branch", "--list", "gh-pages", cwd=remote) == ""
    allowed = _cli_publish(repo, "--cache", cache, "--out", "site-small", "--allow-missing")
    assert allowed.exit_code == 0, allowed.output
    assert commit_count(remote) == 1
    # Nothing changed: no commit; a dry run (here with another base path) pushes nothing.
    same = _cli_publish(repo, "--cache", cache, "--out", "site-small", "--allow-missing")
    assert same.exit_code == 0 and "nothing to publish" in same.output
    dry = _cli_publish(repo, "--cache", cache, "--out", "site-small", "--allow-missing",
                       "--dry-run", "--base-url", "/other/")
    assert dry.exit_code == 0 and "dry run" in dry.output
    assert commit_count(remote) == 1


def test_publish_refuses_a_broken_site(project, tmp_path):
    repo, remote, _ = project
    cache = write_sample_cache(tmp_path / "broken", PROMPTS[:9])
    summary = next((cache / "ranking").rglob("summary.json"))
    row = json.loads(summary.read_text())["rows"][0]
    (summary.parent / row["image"]).unlink()
    result = _cli_publish(repo, "--cache", cache, "--out", "site-broken", "--allow-missing")
    assert result.exit_code == 1
    assert f"continued image(s) missing: {summary.parent / row['image']}" in result.output
    assert git("branch", "--list", "gh-pages", cwd=remote) == ""


@pytest.mark.parametrize(("text", "message"), [
    ("branch: a b\n", "branch 'a b': not a branch name git accepts"),
    ("remote: -x\n", "remote '-x': give the name"),
    ("cname: https://gallery.example.org\n", "cname 'https://gallery.example.org'"),
])
def test_site_settings_name_a_bad_remote_branch_or_cname(tmp_path, text, message):
    from clipig_gallery.generator.settings import load_settings

    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"^{re.escape(f'{path}: {message}')}"):
        load_settings(path)
