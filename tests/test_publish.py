"""Publishing to gh-pages, against a real bare git repository as the remote."""

from __future__ import annotations

import subprocess

import pytest

from generator.publish import PublishError, publish_site


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def project(tmp_path):
    """A user's clone with a bare repository as origin, and a built site."""
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
