"""The ranking table built from the 2021 article's own CSVs matches the article's table.

The article's per-prompt CSVs hold every short run's rating; the best 6 and
worst 2 went on, and ``final-snail-and-penguin.csv`` holds their final
ratings. That file has one column per *prompt* (snail of harp, penguin of
piano), not per method: both penguin columns draw from it, and the runs the
two methods kept are different runs, so a continued image's file name
(``{stem}-from-{run}.png``) says which row of the table it belongs to.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from PIL import Image

from clipig_gallery.core.ratings import (
    format_ratings,
    ratings_for_runs,
    read_ratings,
    run_number,
    select_runs,
)
from clipig_gallery.generator.site import build_site

CSV_DIR = Path(__file__).parent / "fixtures" / "original-csv"
POST = "2021/clipig-animal-transfer/index.html"

# (stem, animal, thing, method, the article's CSV of short runs)
COLUMNS = (("snail-of-harp", "snail", "harp", 1, "snail-of-harp.csv"),
           ("penguin-of-piano", "penguin", "piano", 1, "penguin-of-piano.csv"),
           ("penguin-of-piano", "penguin", "piano", 2, "penguin-of-piano-reso.csv"))

# The article's table, column by column: best rows then "worst of N" rows,
# each (run, sim after the short run, sim after the continued run).
ARTICLE_TABLE = {
    ("snail-of-harp", 1): (512, [(487, "36.81", "45.49"), (134, "36.77", "45.77"),
                                 (326, "36.60", "45.48"), (268, "36.50", "45.07"),
                                 (471, "36.45", "45.77"), (38, "36.35", "45.61")],
                           [(214, "28.86", "45.38"), (171, "29.40", "46.18")]),
    ("penguin-of-piano", 1): (512, [(344, "35.30", "48.65"), (43, "35.23", "47.54"),
                                    (260, "34.38", "48.01"), (40, "34.11", "49.50"),
                                    (221, "33.00", "49.65"), (244, "31.69", "38.75")],
                              [(57, "20.22", "46.67"), (390, "20.82", "47.87")]),
    ("penguin-of-piano", 2): (149, [(108, "21.86", "46.65"), (80, "21.56", "47.80"),
                                    (137, "21.39", "49.67"), (42, "21.29", "50.49"),
                                    (21, "21.28", "49.92"), (24, "21.24", "47.43")],
                              [(6, "17.80", "48.58"), (106, "18.48", "48.61")]),
}
BEST, WORST = 6, 2


def finals_for(stem: str, animal: str, thing: str) -> dict[int, float]:
    """Run -> final sim of its continued image, rated against its own prompt.

    Every continued image was rated against both prompts; the article's
    table uses the prompt the image was rendered for. The column headers say
    "texture of harp" where the per-prompt CSVs say "texture of a harp", so
    the column is found by its first sentence.
    """
    ratings = read_ratings(CSV_DIR / "final-snail-and-penguin.csv")
    prompt = next(p for p in ratings.prompts if p.startswith(f"a {animal} made of {thing}."))
    pattern = re.compile(rf"(?:^|/){re.escape(stem)}-from-(\d+)\.png$")
    return {int(match.group(1)): sim for path, sim in ratings.column(prompt).items()
            if (match := pattern.search(path))}


def write_column(cache: Path, stem: str, animal: str, thing: str, method: int,
                 csv_name: str) -> None:
    """A ranking summary in the cache contract, from the article's CSVs."""
    folder = cache / "ranking" / stem / f"method-{method}"
    (folder / "continued").mkdir(parents=True)
    initial = read_ratings(CSV_DIR / csv_name)
    prompt = initial.prompts[0]
    sims = {run_number(path): sim for path, sim in initial.column(prompt).items()}
    finals = finals_for(stem, animal, thing)
    kept = select_runs(sims, BEST, WORST)
    # The worst go into the file best first: the page must not depend on the order.
    kept = [k for k in kept if k.group == "best"] + [k for k in kept if k.group == "worst"][::-1]
    rows = []
    for k in kept:
        image = f"continued/{stem}-from-{k.run}.png"
        Image.new("RGB", (224, 224), (k.run % 256, 80, 160)).save(folder / image)
        rows.append({"run": k.run, "group": k.group, "initial_sim": k.initial_sim,
                     "final_sim": finals[k.run], "image": image})
    shutil.copy(CSV_DIR / csv_name, folder / "initial.csv")
    final_table = ratings_for_runs(prompt, [(r["image"], r["final_sim"]) for r in rows])
    (folder / "final.csv").write_text(format_ratings(final_table), encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps({
        "prompt": prompt, "animal": animal, "thing": thing, "stem": stem,
        "method": method, "runs": len(sims), "best": BEST, "worst": WORST,
        "rows": rows, "csv": {"initial": "initial.csv", "final": "final.csv"},
    }), encoding="utf-8")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("article-ranking")
    for column in COLUMNS:
        write_column(root / "cache", *column)
    build_site(root / "cache", root / "site")
    soup = BeautifulSoup((root / "site" / POST).read_text(encoding="utf-8"), "html.parser")
    return root, soup


def test_every_continued_image_has_a_final_sim():
    # 24 continued images: 8 per column; the two penguin columns share one CSV
    # column, and the runs the two methods kept are different runs
    assert len(finals_for("snail-of-harp", "snail", "harp")) == 8
    assert len(finals_for("penguin-of-piano", "penguin", "piano")) == 16


def _column_cells(soup: BeautifulSoup, index: int) -> tuple[list, list]:
    rows = soup.find(class_="ranking").find("tbody").find_all("tr", recursive=False)
    split = next(i for i, tr in enumerate(rows) if "group" in (tr.get("class") or []))

    def cells(trs):
        found = []
        for tr in trs:
            wrapper = tr.find_all("td")[index].find(class_="image-wrapper")
            found.append((wrapper["id"], wrapper.find(class_="left").get_text(),
                          wrapper.find(class_="right").get_text()))
        return found

    return cells(rows[:split]), cells(rows[split + 1:])


@pytest.mark.parametrize("index, key", list(enumerate(ARTICLE_TABLE)))
def test_table_matches_the_article(table, index, key):
    _, soup = table
    runs, best, worst = ARTICLE_TABLE[key]
    stem = key[0]

    def expected(rows):
        return [(f"img-{stem}-{run}", f"#{run}", f"sim: {a} → {b}") for run, a, b in rows]

    assert _column_cells(soup, index) == (expected(best), expected(worst))
    header = soup.find(class_="ranking").find("thead").find_all("tr")[1].find_all("td")[index]
    assert header.get_text(" ", strip=True).startswith(f"best of {runs}")
    group = soup.find(class_="ranking").find("tr", class_="group").find_all("th")[index]
    assert group.get_text() == f"worst of {runs}"


def test_article_csvs_are_published_unchanged(table):
    root, soup = table
    links = soup.find(class_="ranking").find_all("a", string="initial csv")
    published = [(root / "site" / POST).parent.joinpath(a["href"]).resolve() for a in links]
    names = [c[4] for c in COLUMNS]
    assert [p.read_bytes() for p in published] == [(CSV_DIR / n).read_bytes() for n in names]


def test_conclusion_links_the_image_that_ended_lowest(table):
    _, soup = table
    conclusion = soup.find("h2", id="conclusion").find_next_siblings("p")
    text = " ".join(p.get_text(" ") for p in conclusion)
    link = next(a for p in conclusion for a in p.find_all("a", href=re.compile("^#img-")))
    # as in the article: penguin #244 stayed at 38.75 while the others passed 45
    assert (link["href"], link.get_text()) == ("#img-penguin-of-piano-244", "penguin #244")
    assert "31.69 → 38.75" in " ".join(text.split())
    assert "17.80 to 36.81" in text and "38.75 to 50.49" in text
