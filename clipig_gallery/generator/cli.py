"""``clipig-gallery site``, ``serve`` and ``publish``: each parses, calls one function,
reports.

Registered on the ``clipig-gallery`` group by ``app.cli``; nothing here imports
torch or the renderer.
"""

from __future__ import annotations

import datetime as _dt
import errno
from pathlib import Path

import click

from clipig_gallery.core.settings import CACHE_ENV, default_cache_dir

from .article import ArticleError
from .cachedata import CacheError


def _a_day(ctx, param, value):
    if value is not None:
        try:
            _dt.date.fromisoformat(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a day, YYYY-MM-DD") from None
    return value


@click.command("site")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Render cache to read (default ${CACHE_ENV}, else ./cache).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write the site into (default: site); with --format jekyll, "
                   "the Jekyll blog to add the post to.")
@click.option("--base-url", default=None, metavar="PATH",
              help="Path the site is served under, e.g. /repo-name/ on GitHub Pages "
                   "(default: clipig_gallery/core/data/site.yaml; pages link relatively, "
                   "only the 404 page and canonical links use it). Not used by --format "
                   "jekyll (the blog's baseurl is).")
@click.option("--format", "form", type=click.Choice(["site", "jekyll"]), default="site",
              show_default=True,
              help="A standalone site, or the post as one post of an existing Jekyll blog.")
@click.option("--assets", default=None, metavar="FOLDER",
              help="With --format jekyll: the post's folder inside the blog (default: "
                   "clipig_gallery/core/data/site.yaml's blog_assets, assets/clipig-gallery).")
@click.option("--post-date", default=None, metavar="YYYY-MM-DD", callback=_a_day,
              help="With --format jekyll: the post's day "
                   "(default: clipig_gallery/core/data/site.yaml).")
@click.option("--slug", default=None, help="With --format jekyll: the post's slug.")
@click.option("--link-assets", type=click.Choice(["body", "front-matter"]), default="body",
              show_default=True,
              help="With --format jekyll: link the script and styles from the post itself "
                   "(any layout), or name them as custom_js / custom_css for a layout "
                   "that links those.")
def site(cache, out, base_url, form, assets, post_date, slug, link_assets):
    """Build the blog post and its images from the cache into a static site (or into an
    existing Jekyll blog)."""
    from .site import BuildError, build_site

    settings = _settings()
    cache = cache or default_cache_dir()
    if not cache.is_dir():
        raise click.ClickException(
            f"cache folder {cache} not found (render first, or pass --cache / set ${CACHE_ENV})")
    if form == "jekyll":
        _site_jekyll(cache, out, assets or settings.blog_assets,
                     post_date or settings.post_date, slug or settings.post_slug, link_assets)
        return
    try:
        report = build_site(cache, out or Path("site"), base_url or settings.base_url)
    except (ArticleError, CacheError, BuildError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line)


def _site_jekyll(cache: Path, blog: Path | None, assets: str, date: str | None,
                 slug: str | None, links: str) -> None:
    from .jekyll import export_jekyll

    if blog is None:
        raise click.UsageError("--format jekyll needs --out BLOG, the Jekyll blog's folder")
    if not blog.is_dir():
        raise click.ClickException(f"blog folder {blog} not found")
    try:
        report = export_jekyll(cache, blog, assets, date=date, slug=slug, links=links)
    except (ArticleError, CacheError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line)


@click.command("serve")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("site"),
              show_default=True, help="The built site.")
@click.option("--base-url", default=None, metavar="PATH",
              help="Serve the site under this path, as GitHub Pages serves a project site "
                   "(default: clipig_gallery/core/data/site.yaml).")
def serve(port, out, base_url):
    """Preview the built site on localhost."""
    from .serve import serve as run_server
    from .sitepaths import BaseUrlError

    base_url = base_url or _settings().base_url
    try:
        run_server(out, port, base_url, echo=click.echo)
    except (BaseUrlError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(f"port {port} on 127.0.0.1 is in use: pass another "
                                       f"--port (0 picks a free one)") from None
        raise click.ClickException(str(exc)) from None


def _settings():
    from .settings import load_settings

    try:
        return load_settings()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("publish")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Render cache to build from (default ${CACHE_ENV}, else ./cache).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("site"),
              show_default=True, help="Site folder to build and publish.")
@click.option("--remote", default=None,
              help="Git remote to push to (default: clipig_gallery/core/data/site.yaml).")
@click.option("--branch", default=None,
              help="Branch to publish on (default: clipig_gallery/core/data/site.yaml).")
@click.option("--cname", default=None, metavar="HOST", help="Custom domain (writes CNAME).")
@click.option("--base-url", default=None, metavar="PATH",
              help="Path the site is served under (default: clipig_gallery/core/data/site.yaml).")
@click.option("--allow-missing", is_flag=True,
              help="Publish even though some of the 1620 renders are missing.")
@click.option("--dry-run", is_flag=True, help="Show what would be pushed; push nothing.")
def publish(cache, out, remote, branch, cname, base_url, allow_missing, dry_run):
    """Build the site if needed, check it, and push it to the gh-pages branch."""
    from .publish import PublishError, publish_gallery

    settings = _settings()
    try:
        result, lines = publish_gallery(
            cache or default_cache_dir(), out,
            remote=remote or settings.remote, branch=branch or settings.branch,
            cname=cname or settings.cname, base_url=base_url or settings.base_url,
            allow_missing=allow_missing, dry_run=dry_run,
        )
    except (PublishError, ArticleError, CacheError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in lines:
        click.echo(line)


# Registered on the clipig-gallery group by app.cli.
COMMANDS = (site, serve, publish)
