// Optimisation histories: an animated WebP per image that plays once and stops on
// the image. A control (a.history-control, a link to the file, so it works without
// this script too) carries the file's URL, its play time in ms and the URL of its
// four-frame strip; the stage ([data-history-stage], in the same figure) is what
// the animation plays over. Nothing is fetched until a reader asks: hovering the
// stage with a mouse, reaching it with the keyboard or tapping it plays the history,
// and so does activating the control. Where the reader asked
// for reduced motion, nothing moves by itself and the control shows the strip.
//
// A play-once image does not restart when its src is set again, and browsers
// differ in whether a cached one replays at all. So each file is fetched once
// (a Blob, kept per URL) and every play gets a fresh object URL in a new <img>
// over the image, which is taken away (and its URL revoked) when the play time
// is up.
(function () {
  "use strict";

  var template = document.getElementById("clipig-history-parts");
  if (!template || !window.fetch || !window.URL || !URL.createObjectURL) return;
  var parts = template.content;
  var files = {};  // URL -> promise of its Blob
  var plays = new Map();  // stage -> the play on it: {overlay, src, timer}

  function reducedMotion() {
    return !!window.matchMedia && matchMedia("(prefers-reduced-motion: reduce)").matches;
  }

  // The control of the figure around an element; null where it has none on show.
  function controlOf(element) {
    var figure = element.closest("figure");
    var control = figure ? figure.querySelector("a.history-control") : null;
    return control && !control.hidden && control.hasAttribute("href") ? control : null;
  }

  function stageOf(control) {
    return control.closest("figure").querySelector("[data-history-stage]");
  }

  function part(name) {
    return parts.querySelector("." + name).cloneNode(true);
  }

  function fetchOnce(url) {
    if (!files[url]) {
      files[url] = fetch(url).then(function (response) {
        if (!response.ok) throw new Error(url + ": HTTP " + response.status);
        return response.blob();
      });
      files[url].catch(function () { delete files[url]; });  // asked again, tried again
    }
    return files[url];
  }

  function stop(stage) {
    var play = plays.get(stage);
    if (!play) return;
    plays.delete(stage);
    clearTimeout(play.timer);
    if (play.overlay) play.overlay.remove();
    if (play.src) URL.revokeObjectURL(play.src);
  }

  // The image the history ends in, under the animation (the article's box has it
  // from the start; this puts it back if it is missing).
  function showFinal(control, stage) {
    var final = control.getAttribute("data-history-final");
    if (!final || stage.querySelector("img.history-final")) return;
    var img = part("history-final");
    img.src = final;
    stage.appendChild(img);
  }

  function removeStrip(stage) {
    var strip = stage.querySelector("img.history-strip");
    if (strip) strip.remove();
    return !!strip;
  }

  // restart: false for hover and focus, so moving about over a playing image
  // does not start it over; true for the control, which always plays from the start.
  function play(control, restart) {
    var stage = stageOf(control);
    if (!stage || (!restart && plays.has(stage))) return;
    stop(stage);
    removeStrip(stage);
    showFinal(control, stage);
    var current = {};
    plays.set(stage, current);
    var ms = Number(control.getAttribute("data-history-ms")) || 0;
    fetchOnce(control.href).then(function (blob) {
      if (plays.get(stage) !== current) return;  // stopped or started over meanwhile
      current.src = URL.createObjectURL(blob);
      current.overlay = part("history-frame");
      current.overlay.addEventListener("load", function () {
        current.timer = setTimeout(function () {
          if (plays.get(stage) === current) stop(stage);
        }, ms);
      });
      current.overlay.addEventListener("error", function () {
        if (plays.get(stage) === current) stop(stage);
      });
      current.overlay.src = current.src;
      stage.appendChild(current.overlay);
    }, function (error) {
      if (plays.get(stage) === current) stop(stage);
      console.warn("CLIPig: history not played: " + error.message);
    });
  }

  // Reduced motion: the control shows the strip, and hides it again.
  function toggleStrip(control) {
    var stage = stageOf(control);
    if (!stage) return;
    stop(stage);
    if (removeStrip(stage)) return;
    showFinal(control, stage);
    var strip = part("history-strip");
    strip.src = control.getAttribute("data-history-strip");
    stage.appendChild(strip);
  }

  function focusVisible(element) {
    try {
      return element.matches(":focus-visible");
    } catch (e) {
      return true;  // a browser without :focus-visible: every focus counts
    }
  }

  // pointerenter does not bubble; listening while it goes down to the target does.
  document.addEventListener("pointerenter", function (ev) {
    var stage = ev.target;
    if (ev.pointerType !== "mouse" || !stage.matches || !stage.matches("[data-history-stage]") ||
        reducedMotion()) return;
    var control = controlOf(stage);
    if (control) play(control, false);
  }, true);

  document.addEventListener("focusin", function (ev) {
    var stage = ev.target;
    if (!stage.matches || !stage.matches("[data-history-stage]") || !focusVisible(stage) ||
        reducedMotion()) return;
    var control = controlOf(stage);
    if (control) play(control, false);
  });

  // A tap on an image plays its history; a tap while it plays opens the image as
  // before. A mouse click always opens it (hovering has played it already).
  var lastPointer = "";
  document.addEventListener("pointerdown", function (ev) { lastPointer = ev.pointerType; }, true);
  document.addEventListener("click", function (ev) {
    var stage = ev.target.closest ? ev.target.closest("[data-history-stage]") : null;
    if (!stage || lastPointer !== "touch" || stage.classList.contains("history-control") ||
        reducedMotion() || plays.has(stage)) return;
    var control = controlOf(stage);
    if (!control) return;
    ev.preventDefault();
    play(control, false);
  });

  document.addEventListener("click", function (ev) {
    var control = ev.target.closest ? ev.target.closest("a.history-control") : null;
    if (!control || !control.hasAttribute("href") || ev.button !== 0 || ev.ctrlKey ||
        ev.metaKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    if (reducedMotion()) toggleStrip(control);
    else play(control, true);
  });
})();

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
  var histories = data.history || null;  // the first attempts'; the best of N's in best
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

  // The play time (ms) of one cell's history in a view's data; 0 where it has none.
  function historyMs(h, thing, i, method) {
    var row = h ? h.ms[thingIndex[thing]] : null;
    var cell = row ? row[i] : null;
    return cell ? cell[data.methods.indexOf(method)] : 0;
  }

  // The cell's history control (where the page has them) follows the image on show;
  // the history itself is fetched only when a reader asks (see above).
  function fillHistory(figure, i, entry, s) {
    var control = figure.querySelector("a.history-control");
    if (!control) return;
    var h = s.view === "best" ? (best && best.history) || null : histories;
    var ms = entry ? historyMs(h, s.thing, i, s.method) : 0;
    if (ms) {
      control.setAttribute("href", url(h.webp, s.method, entry[0]));
      control.setAttribute("data-history-ms", String(ms));
      control.setAttribute("data-history-strip", url(h.strip, s.method, entry[0]));
      control.hidden = false;
    } else {
      ["href", "data-history-ms", "data-history-strip"].forEach(function (name) {
        control.removeAttribute(name);
      });
      control.hidden = true;
    }
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
      fillHistory(figure, i, row[i], s);
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
