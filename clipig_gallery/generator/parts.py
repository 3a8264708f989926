"""The post's generated parts, and the helpers the article calls to place them.

Each part (selector, heatmap, ranking table, method configs, the judge's
scatter plot, figures) is computed once from the inputs; a helper only drops
the rendered part, or one formatted figure, into a slot of the article.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

import yaml
from jinja2 import Environment
from markupsafe import Markup

from clipig_gallery.core.layout import best_of_root, judge_csv_path, sims_csv_path
from clipig_gallery.core.prompts import animals, things
from clipig_gallery.core.textfiles import NotUTF8, load_yaml, read_utf8

from .article import ArticleError, Slots
from .bestof import BestOfFacts, most_and_least, signed
from .cachedata import Render
from .figures import DALLE_SAMPLES, NOT_MEASURED, cost_figures, format_duration
from .heatmap import build_best_of_heatmap, build_heatmap
from .inputs import Inputs
from .judge import JudgeFacts, build_scatter, judged_pairs
from .ranking import build_table, lowest_final
from .selector import best_of_label, choose_default, selector_context, sim_text, thing_order
from .sitepaths import BEST, BEST_OF_IMAGES, IMAGES, Urls, config_file, selection_fragment

NOT_RUN = "(not run yet)"


class SiteFiles:
    """Files the build puts into the site, by site path: copies, WebP copies, and the
    strips of optimisation histories (each made from the history it names)."""

    def __init__(self):
        self.copies: dict[str, Path] = {}
        self.webp: dict[str, Path] = {}
        self.strips: dict[str, Path] = {}

    def copy(self, site_path: str, source: Path) -> str:
        self.copies[site_path] = source
        return site_path

    def web(self, site_path: str, source: Path) -> str:
        self.webp[site_path] = source
        return site_path

    def strip(self, site_path: str, history: Path) -> str:
        self.strips[site_path] = history
        return site_path


class PostParts:
    def __init__(self, inputs: Inputs, env: Environment, urls: Urls, files: SiteFiles):
        self.inputs, self.env, self.urls, self.files = inputs, env, urls, files
        self._configs: dict[str, object] = {}
        prompts, methods = inputs.prompts, inputs.methods
        self._ranking(inputs.article.meta.get("ranking"))
        self._selector(inputs.article.meta.get("selector") or {})
        stems = {(p.animal, p.thing): p.stem for p in prompts}
        sims = {m: {s: r.sim for s, r in inputs.renders[m].items()} for m in methods}
        best = {m: {s: r.sim for s, r in inputs.best_of.get(m, {}).items()} for m in methods}
        self.best_facts = BestOfFacts(prompts, inputs.renders, inputs.best_of,
                                      inputs.best_of_summary)
        label = best_of_label(inputs.best_of)
        self._judge(label)
        # One colour scale for the first attempts and the best of N.
        best_values = [v for by_stem in best.values() for v in by_stem.values()
                       if v is not None]
        self.heatmap = build_heatmap(animals(prompts), thing_order(prompts), stems, sims,
                                     also=best_values)
        self.best_heatmap = None if label is None else {
            "map": build_best_of_heatmap(animals(prompts), thing_order(prompts), stems, sims,
                                         best, label),
            "label": label,
            "count": sum(len(r) for r in inputs.best_of.values()),
            "compared": len(self.best_facts.gains),
        }
        self.costs = {m: cost_figures(inputs.summary.get(m), len(prompts)) for m in methods}
        self.counts = {
            "prompts": len(prompts),
            "animals": len(animals(prompts)),
            "things": len(things(prompts)),
            "methods": len(methods),
            "images": len(prompts) * len(methods),
            "rendered": sum(len(r) for r in inputs.renders.values()),
        }

    def _ranking(self, wanted: list | None) -> None:
        """The table of the columns the article names ("stem/method"), or of all there are."""
        keys = [str(k) for k in wanted or sorted(self.inputs.rankings)]
        columns = [self.inputs.rankings[k] for k in keys if k in self.inputs.rankings]
        self.ranking_missing = [f"{k.rsplit('/', 1)[0]} (method {k.rsplit('/', 1)[-1]})"
                                for k in keys if k not in self.inputs.rankings]
        self.table = build_table(columns, self.urls)
        for site_path, source in self.table.files:
            self.files.copy(site_path, source)
        for site_path, source in self.table.webp:
            self.files.web(site_path, source)

    def _csvs(self, kind: str, best: bool = False) -> list[int]:
        """The methods whose ``kind`` CSV (sims or judge) is in the cache, each copied
        into the site: of the first attempts, or with ``best`` of best of N."""
        found = []
        cache = best_of_root(self.inputs.cache) if best else self.inputs.cache
        tree = BEST_OF_IMAGES if best else IMAGES
        cache_path, site_path = {"sims": (sims_csv_path, tree.sims_csv),
                                 "judge": (judge_csv_path, tree.judge_csv)}[kind]
        for m in self.inputs.methods:
            source = cache_path(cache, m)
            if (not best or self.inputs.best_of.get(m)) and source.is_file():
                self.files.copy(site_path(m), source)
                found.append(m)
        return found

    def _selector(self, wanted: dict) -> None:
        prompts, methods = self.inputs.prompts, self.inputs.methods
        self.default = choose_default(thing_order(prompts), methods, wanted.get("thing"),
                                      wanted.get("method"))
        judge = self.inputs.judge
        # The judge's CSVs only beside its judge.json: without it the page is as before.
        judge_csvs = {} if judge is None else {
            "judge_model": judge.model,
            "judge_csv_methods": self._csvs("judge"),
            "best_judge_csv_methods": self._csvs("judge", best=True),
        }
        self.selector = selector_context(prompts, self.inputs.renders, methods, self.default,
                                         self.urls, self._csvs("sims"),
                                         self.inputs.best_of, self._csvs("sims", best=True),
                                         histories=self.inputs.histories, **judge_csvs)

    def _judge(self, best_label: str | None) -> None:
        """The judge's figures and its scatter plot; neither without judge.json."""
        judge, prompts = self.inputs.judge, self.inputs.prompts
        first = judged_pairs(prompts, self.inputs.renders) if judge else []
        best = judged_pairs(prompts, self.inputs.best_of, BEST) if judge else []
        self.judge_facts = JudgeFacts(judge.model if judge else None, first)
        self.scatter = build_scatter(prompts, judge.model, first, best, self.inputs.methods,
                                     best_label or "") if first or best else None

    def _render(self, template: str, **context) -> Markup:
        return Markup(self.env.get_template(template).render(**context))

    def method_config(self, method: int) -> Markup:
        """The config file the renderer ran for ``method``, as text, and a copy to download."""
        entry = self.inputs.summary.get(method) or {}
        name = str(entry.get("config") or f"method-{method}.yaml")
        if PurePosixPath(name).name != name:
            raise ArticleError(f"summary.json: method {method} config {name!r} is not a file name")
        source = self.inputs.data_dir / "methods" / name
        if not source.is_file():
            raise ArticleError(f"method {method}: config {source} not found")
        href = self.urls(self.files.copy(config_file(name), source))
        try:
            text = read_utf8(source)
        except NotUTF8 as exc:
            raise ArticleError(f"method {method}: config {source}: {exc}") from None
        return self._render("parts/config.html", text=text,
                            name=name, href=href, hash=entry.get("config_hash"),
                            epochs=entry.get("epochs"))

    def _yaml(self, name: str) -> object:
        if name not in self._configs:
            path = (self.inputs.data_dir / name).resolve()
            if self.inputs.data_dir.resolve() not in path.parents or path.suffix != ".yaml":
                raise ArticleError(f"config_value: {name!r} is not a .yaml file under "
                                   "clipig_gallery/core/data/")
            try:
                self._configs[name] = load_yaml(read_utf8(path))
            except (OSError, NotUTF8) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise ArticleError(f"config_value: cannot read {path}: {why}") from None
            except yaml.YAMLError as exc:
                raise ArticleError(f"config_value: {path} is not valid YAML: {exc}") from None
        return self._configs[name]

    def config_value(self, name: str, *keys: str) -> str:
        value = self._yaml(name)
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                raise ArticleError(f"config_value: {name} has no {'.'.join(keys)}")
            value = value[key]
        return str(value)

    def ranking_fact(self, key: str, field: str) -> str:
        column = self.inputs.rankings.get(key)
        if column is None:
            return NOT_RUN
        facts = {"runs": column.runs, "best": len(column.best), "worst": len(column.worst),
                 "prompt": column.prompt, "epochs_short": column.epochs_short,
                 "epochs_detail": column.epochs_detail}
        if field not in facts:
            raise ArticleError(f"ranking(): unknown field {field!r}; use one of {sorted(facts)}")
        if facts[field] is None:
            # An older summary without the epochs: the configuration's value.
            kind = field.removeprefix("epochs_")
            return self.config_value(f"ranking/method-{column.method}-{kind}.yaml", "epochs")
        return str(facts[field])

    def lowest_final(self, field: str) -> Markup | str:
        cell = lowest_final(self.table)
        if cell is None:
            return NOT_RUN
        if field == "link":
            return self._render("parts/image_link.html", cell=cell)
        if field in ("initial", "final"):
            return getattr(cell, field)
        raise ArticleError(f"lowest_final(): unknown field {field!r}; use link, initial or final")

    def sim_range(self, which: str) -> str:
        if which not in ("initial", "final"):
            raise ArticleError(f"sim_range(): use 'initial' or 'final', not {which!r}")
        values = [getattr(c, f"{which}_sim") for c in self.table.cells()]
        values = [v for v in values if v is not None]
        return f"{min(values):.2f} to {max(values):.2f}" if values else NOT_RUN

    def _fact(self, helper: str, facts, key: str, method: int | None) -> str:
        """One formatted figure of ``facts`` (best-of or judge) for the helper ``helper``."""
        if method is not None and method not in self.inputs.methods:
            raise ArticleError(f"{helper}(): unknown method {method!r}")
        try:
            return facts.fact(key, method)
        except KeyError:
            raise ArticleError(f"{helper}(): unknown key {key!r}; use one of "
                               f"{sorted(facts.KEYS)}") from None
        except ValueError as exc:
            raise ArticleError(f"{helper}(): {exc}") from None

    def best_of_fact(self, key: str, method: int | None = None) -> str:
        return self._fact("best_of", self.best_facts, key, method)

    def best_of_gain(self, which: str, field: str) -> Markup | str:
        """The prompt that gained most (``which="most"``) or least, and its figures."""
        if which not in ("most", "least"):
            raise ArticleError(f"best_of_gain(): use 'most' or 'least', not {which!r}")
        fields = ("link", "gain", "first", "best")
        if field not in fields:
            raise ArticleError(f"best_of_gain(): unknown field {field!r}; use one of {fields}")
        pair = most_and_least(self.best_facts.gains)
        if pair is None:
            return NOT_RUN
        gain = pair[0] if which == "most" else pair[1]
        if field == "link":
            href = "#" + selection_fragment(gain.prompt.thing, gain.method, BEST)
            return self._render("parts/selection_link.html", href=href,
                                text=f"{gain.prompt.animal} made of {gain.prompt.thing}",
                                method=gain.method)
        if field == "gain":
            return signed(gain.gain)
        return f"{getattr(gain, field):.2f}"

    def judge_fact(self, key: str, method: int | None = None) -> str:
        return self._fact("judge", self.judge_facts, key, method)

    def judge_scatter(self) -> Markup:
        if self.scatter is None:
            return Markup('<p class="note">The judge has not rated these images yet.</p>')
        return self._render("parts/scatter.html", plot=self.scatter)

    def history_pick(self, method: int) -> Render | None:
        """The image of ``method`` whose history the article shows; None without any.

        Of the method's first attempts that have a history, the one with the
        highest sim (one without a sim comes last; the first stem of equals).
        A first attempt rather than a best-of winner: its history starts where
        the method starts, from noise, not from a short run's image.
        """
        if method not in self.inputs.methods:
            raise ArticleError(f"method_history(): unknown method {method!r}")
        kept = [r for r in self.inputs.renders.get(method, {}).values()
                if r.png in self.inputs.histories]
        return min(kept, key=lambda r: (r.sim is None, -(r.sim or 0.0), r.stem), default=None)

    def method_history(self, method: int) -> Markup:
        """One image of ``method`` taking shape (see :meth:`history_pick`); nothing where
        none of the method's images has a history."""
        render = self.history_pick(method)
        if render is None:
            return Markup("")
        history = self.inputs.histories[render.png]
        prompt = next(p for p in self.inputs.prompts if p.stem == render.stem)
        return self._render(
            "parts/history.html", method=method, prompt=render.prompt, sim=sim_text(render.sim),
            frames=history.frames, ms=history.ms, duration=format_duration(history.seconds),
            href=self.urls(IMAGES.history_webp(method, render.stem)),
            strip=self.urls(IMAGES.history_strip(method, render.stem)),
            final=self.urls(IMAGES.webp(method, render.stem)),
            alt=f"method {method}: {render.prompt}",
            selection="#" + selection_fragment(prompt.thing, method))

    def _lookup(self, table: dict, key, what: str):
        if key not in table:
            raise ArticleError(f"{what}: unknown {key!r}; use one of {sorted(table)}")
        return table[key]

    def helpers(self, slots: Slots) -> dict[str, Callable]:
        """What ``core/data/article.md`` may call; each returns a slot token, except the
        tests ``measured``, ``ranked``, ``best_of_run``, ``best_of_gained``, ``judged`` and
        ``judge_agrees`` for ``{% if %}``."""
        return {
            "selector": lambda: slots.block(self._render("parts/selector.html", **self.selector)),
            "heatmap": lambda: slots.block(self._render(
                "parts/heatmap.html", map=self.heatmap, counts=self.counts,
                best=self.best_heatmap)),
            "ranking_table": lambda: slots.block(self._render(
                "parts/ranking.html", table=self.table, missing=self.ranking_missing)),
            "method_config": lambda m: slots.block(self.method_config(m)),
            # one image of the method taking shape, where the cache kept histories
            "method_history": lambda m: slots.block(self.method_history(m)),
            "cost": lambda m, key: slots.inline(
                self._lookup(self._lookup(self.costs, m, "cost()"), key, "cost()")),
            "count": lambda what: slots.inline(self._lookup(self.counts, what, "count()")),
            "dalle_samples": lambda: slots.inline(DALLE_SAMPLES),
            # a plain test for {% if %}, so prose can wait for figures that exist
            "measured": lambda *ms: all(self.costs[m]["per_image"] != NOT_MEASURED for m in ms),
            "ranked": lambda: bool(self.table.cells()),
            "ranking": lambda key, field: slots.inline(self.ranking_fact(key, field)),
            "lowest_final": lambda field: slots.inline(self.lowest_final(field)),
            "sim_range": lambda which: slots.inline(self.sim_range(which)),
            "config_value": lambda name, *keys: slots.inline(self.config_value(name, *keys)),
            # the best-of gallery: a test for {% if %}, its figures, its gains
            "best_of_run": lambda *ms: self.best_facts.ran(*ms),
            "best_of_gained": lambda: bool(self.best_facts.gains),
            "best_of": lambda key, method=None: slots.inline(self.best_of_fact(key, method)),
            "best_of_gain": lambda which, field: slots.inline(self.best_of_gain(which, field)),
            # the judge: tests for {% if %} (rated at all / for these methods; a method
            # it agrees with more, no tie), its figures, its scatter plot
            "judged": lambda *ms: self.judge_facts.ran(*ms),
            "judge_agrees": lambda: self.judge_facts.agrees_more() is not None,
            "judge": lambda key, method=None: slots.inline(self.judge_fact(key, method)),
            "judge_scatter": lambda: slots.block(self.judge_scatter()),
        }
