// The article's selector: thing x method (x view) -> the nine animals' images.
// Data comes from the JSON the page embeds; this file holds behaviour only.
// The view is the first attempt, or the best of N where the page has best-of
// images (data.best); best-of images are asked for only once that view is chosen.
(function () {
  "use strict";

  var root = document.querySelector("[data-clipig-selector]");
  if (!root) return;
  var data = JSON.parse(document.getElementById("clipig-selector-data").textContent);
  var thingSelect = root.querySelector("select[name=thing]");
  var methodSelect = root.querySelector("select[name=method]");
  var figures = root.querySelectorAll(".animals figure");
  var stepButtons = root.querySelectorAll("button[data-step]");
  var selectionLink = root.querySelector("a[data-selection-link]");
  var viewToggle = root.querySelector("button[data-view-toggle]");
  var pictures = document.getElementById("clipig-selector-pictures").content;
  var thingIndex = {};
  data.things.forEach(function (t, i) { thingIndex[t] = i; });
  var best = data.best || null;
  var state = null;
  var preloaded = {};

  function url(pattern, method, stem, run) {
    return pattern.replace("{method}", String(method)).replace("{stem}", stem)
      .replace("{run}", String(run));
  }

  // entry: [stem, prompt per method..., sim label per method...], as Python
  // wrote them; a label is null where that method's render is missing.
  function promptOf(entry, method) {
    return entry[1 + data.methods.indexOf(method)];
  }

  function labelOf(entry, method) {
    return entry ? entry[1 + data.methods.length + data.methods.indexOf(method)] : null;
  }

  // The best-of entry of one cell: [N, short sim, final sim, run, short image?, CSV?]
  // and, where the judge rated the image, its sim; null where that thing, animal
  // and method has no best-of image.
  function bestOf(thing, i, method) {
    var row = best ? best.cells[thingIndex[thing]] : null;
    var cell = row ? row[i] : null;
    return cell ? cell[data.methods.indexOf(method)] : null;
  }

  function parseState(hash) {
    var params = new URLSearchParams(hash.replace(/^#/, ""));
    if (!params.has("thing")) return null;  // a heading or image link, not a selection
    var thing = params.get("thing");
    var method = Number(params.get("method") || data["default"].method);
    if (!(thing in thingIndex) || data.methods.indexOf(method) < 0) return null;
    // Links from before the best-of view have no view: the first attempt.
    var view = best && params.get("view") === "best" ? "best" : "first";
    return { thing: thing, method: method, view: view };
  }

  function hashOf(s) {
    var params = { thing: s.thing, method: String(s.method) };
    if (s.view === "best") params.view = "best";
    return "#" + new URLSearchParams(params).toString();
  }

  function rendered(entry, method) {
    return labelOf(entry, method) !== null;
  }

  // Fills the template's [data-slot] elements with the entry's strings.
  function slots(element, values) {
    element.querySelectorAll("[data-slot]").forEach(function (slot) {
      slot.textContent = String(values[slot.getAttribute("data-slot")]);
    });
    return element;
  }

  function bestSlots(b) {
    return { n: b[0], short: b[1], "final": b[2], run: b[3], judge: b[6] };
  }

  // The picture's markup is the page's <template>; this only fills it in.
  function fillFirst(figure, i, entry, method) {
    var picture;
    if (rendered(entry, method)) {
      picture = pictures.querySelector("a").cloneNode(true);
      picture.href = url(data.png, method, entry[0]);
      picture.querySelector("img").alt = promptOf(entry, method);
      picture.querySelector("img").src = url(data.webp, method, entry[0]);
    } else {
      picture = pictures.querySelector(".missing:not(.best-missing)").cloneNode(true);
      picture.setAttribute("aria-label", data.missing[i]);
    }
    figure.replaceChild(picture, figure.firstElementChild);
    figure.querySelector(".sim").textContent = labelOf(entry, method) || "";
  }

  function fillBest(figure, i, entry, s) {
    var method = s.method, b = entry ? bestOf(s.thing, i, method) : null;
    var picture, caption = figure.querySelector(".sim");
    caption.textContent = "";
    if (b) {
      picture = slots(pictures.querySelector(".best-of").cloneNode(true), bestSlots(b));
      var link = picture.querySelector("a");
      link.href = url(best.png, method, entry[0]);
      link.querySelector("img").alt = promptOf(entry, method);
      link.querySelector("img").src = url(best.webp, method, entry[0]);
      var short = picture.querySelector("img.short");
      if (b[4]) short.src = url(best.short, method, entry[0], b[3]);
      else short.remove();  // the winner's short image is not kept: show nothing for it
      var sims = picture.querySelector("a.all-sims");
      if (b[5]) sims.href = url(best.csv, method, entry[0]);
      else sims.remove();
      var text = pictures.querySelector(".best-caption").cloneNode(true);
      var judged = text.querySelector(".judge");
      if (judged && b[6] == null) judged.remove();  // the judge has not rated this one
      caption.appendChild(slots(text, bestSlots(b)));
    } else {
      picture = pictures.querySelector(".best-missing").cloneNode(true);
      picture.setAttribute("aria-label", best.missing[i]);
    }
    figure.replaceChild(picture, figure.firstElementChild);
  }

  function preloadOne(src) {
    if (preloaded[src]) return;
    preloaded[src] = new Image();
    preloaded[src].src = src;
  }

  // Only the view on show is preloaded: best-of images wait until it is chosen.
  function preload(thing, method, view) {
    data.cells[thingIndex[thing]].forEach(function (entry, i) {
      if (!entry) return;
      if (view !== "best") {
        if (rendered(entry, method)) preloadOne(url(data.webp, method, entry[0]));
      } else if (bestOf(thing, i, method)) {
        preloadOne(url(best.webp, method, entry[0]));
      }
    });
  }

  function preloadNeighbours(s) {
    var i = thingIndex[s.thing];
    if (i > 0) preload(data.things[i - 1], s.method, s.view);
    if (i < data.things.length - 1) preload(data.things[i + 1], s.method, s.view);
    data.methods.forEach(function (m) { if (m !== s.method) preload(s.thing, m, s.view); });
  }

  function logSelection(s) {
    var row = data.cells[thingIndex[s.thing]];
    var prompts = row.filter(Boolean).map(function (e) { return promptOf(e, s.method); });
    var view = s.view === "best" ? " (" + best.label + ")" : "";
    console.log("CLIPig: " + s.thing + ", method " + s.method + view + "\n" +
                prompts.join("\n"));
  }

  function show(s) {
    if (state && state.thing === s.thing && state.method === s.method &&
        state.view === s.view) return;
    state = s;
    var row = data.cells[thingIndex[s.thing]];
    figures.forEach(function (figure, i) {
      if (s.view === "best") fillBest(figure, i, row[i], s);
      else fillFirst(figure, i, row[i], s.method);
    });
    thingSelect.value = s.thing;
    methodSelect.value = String(s.method);
    if (viewToggle) viewToggle.setAttribute("aria-pressed", String(s.view === "best"));
    var i = thingIndex[s.thing];
    stepButtons.forEach(function (b) {
      var step = Number(b.getAttribute("data-step"));
      b.disabled = i + step < 0 || i + step >= data.things.length;
    });
    if (selectionLink) selectionLink.setAttribute("href", hashOf(s));
    logSelection(s);
    preloadNeighbours(s);
  }

  // A reader's choice becomes a history entry, so back/forward walk through
  // them; the address bar then always names what is shown.
  function choose(s) {
    show(s);
    if (location.hash !== hashOf(s)) history.pushState(null, "", hashOf(s));
  }

  function step(delta) {
    var i = thingIndex[state.thing] + delta;
    if (i < 0 || i >= data.things.length) return;  // no wrap-around
    choose({ thing: data.things[i], method: state.method, view: state.view });
  }

  function toggleView() {
    if (!best) return;
    choose({ thing: state.thing, method: state.method,
             view: state.view === "best" ? "first" : "best" });
  }

  function inView() {
    // At least half of the selector (or half the window) must be visible,
    // so the arrow keys scroll the page as usual everywhere else.
    var box = root.getBoundingClientRect();
    var visible = Math.min(box.bottom, window.innerHeight) - Math.max(box.top, 0);
    return visible >= Math.min(box.height, window.innerHeight) / 2;
  }

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function onKey(ev) {
    if (ev.defaultPrevented || ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey ||
        ev.isComposing || typing(ev.target)) return;
    if (!inView() && !root.contains(document.activeElement)) return;
    if (ev.key === "ArrowUp" || ev.key === "ArrowDown") {
      step(ev.key === "ArrowUp" ? -1 : 1);
    } else if (data.methods.indexOf(Number(ev.key)) >= 0) {
      choose({ thing: state.thing, method: Number(ev.key), view: state.view });
    } else if (best && (ev.key === "b" || ev.key === "B")) {  // "B": caps lock
      toggleView();
    } else {
      return;
    }
    ev.preventDefault();
  }

  thingSelect.addEventListener("change", function () {
    choose({ thing: thingSelect.value, method: state.method, view: state.view });
  });
  methodSelect.addEventListener("change", function () {
    choose({ thing: state.thing, method: Number(methodSelect.value), view: state.view });
  });
  if (viewToggle && best) {
    viewToggle.addEventListener("click", toggleView);
    viewToggle.hidden = false;
  }
  stepButtons.forEach(function (b) {
    b.addEventListener("click", function () { step(Number(b.getAttribute("data-step"))); });
  });
  document.addEventListener("keydown", onKey);

  // Links elsewhere on the page (the heatmap) that name a selection.
  document.addEventListener("click", function (ev) {
    var link = ev.target.closest ? ev.target.closest("a[href^='#thing=']") : null;
    if (!link || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    var s = parseState(link.getAttribute("href"));
    if (!s) return;
    ev.preventDefault();
    choose(s);
    root.scrollIntoView({ block: "start" });
    root.focus({ preventScroll: true });
  });

  function fromLocation() {
    var s = parseState(location.hash);
    if (s) show(s);
  }
  window.addEventListener("popstate", fromLocation);
  window.addEventListener("hashchange", fromLocation);

  console.log("CLIPig keywords\nthings (" + data.things.length + "): " +
              data.things.join(", ") + "\nanimals (" + data.animals.length + "): " +
              data.animals.join(", "));
  show(parseState(location.hash) ||
       { thing: data["default"].thing, method: data["default"].method, view: "first" });
})();
