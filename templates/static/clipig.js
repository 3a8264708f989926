// The article's selector: thing x method -> the nine animals' images.
// Data comes from the JSON the page embeds; this file holds behaviour only.
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
  var pictures = document.getElementById("clipig-selector-pictures").content;
  var thingIndex = {};
  data.things.forEach(function (t, i) { thingIndex[t] = i; });
  var state = null;
  var preloaded = {};

  function url(pattern, method, stem) {
    return pattern.replace("{method}", String(method)).replace("{stem}", stem);
  }

  // entry: [stem, prompt per method..., sim label per method...], as Python
  // wrote them; a label is null where that method's render is missing.
  function promptOf(entry, method) {
    return entry[1 + data.methods.indexOf(method)];
  }

  function labelOf(entry, method) {
    return entry ? entry[1 + data.methods.length + data.methods.indexOf(method)] : null;
  }

  function parseState(hash) {
    var params = new URLSearchParams(hash.replace(/^#/, ""));
    if (!params.has("thing")) return null;  // a heading or image link, not a selection
    var thing = params.get("thing");
    var method = Number(params.get("method") || data["default"].method);
    if (!(thing in thingIndex) || data.methods.indexOf(method) < 0) return null;
    return { thing: thing, method: method };
  }

  function hashOf(s) {
    return "#" + new URLSearchParams({ thing: s.thing, method: String(s.method) }).toString();
  }

  function rendered(entry, method) {
    return labelOf(entry, method) !== null;
  }

  // The picture's markup is the page's <template>; this only fills it in.
  function fill(figure, i, entry, method) {
    var picture;
    if (rendered(entry, method)) {
      picture = pictures.querySelector("a").cloneNode(true);
      picture.href = url(data.png, method, entry[0]);
      picture.querySelector("img").alt = promptOf(entry, method);
      picture.querySelector("img").src = url(data.webp, method, entry[0]);
    } else {
      picture = pictures.querySelector(".missing").cloneNode(true);
      picture.setAttribute("aria-label", data.missing[i]);
    }
    figure.replaceChild(picture, figure.firstElementChild);
    figure.querySelector(".sim").textContent = labelOf(entry, method) || "";
  }

  function preload(thing, method) {
    var row = data.cells[thingIndex[thing]];
    row.forEach(function (entry) {
      if (!rendered(entry, method)) return;
      var src = url(data.webp, method, entry[0]);
      if (preloaded[src]) return;
      preloaded[src] = new Image();
      preloaded[src].src = src;
    });
  }

  function preloadNeighbours(s) {
    var i = thingIndex[s.thing];
    if (i > 0) preload(data.things[i - 1], s.method);
    if (i < data.things.length - 1) preload(data.things[i + 1], s.method);
    data.methods.forEach(function (m) { if (m !== s.method) preload(s.thing, m); });
  }

  function logSelection(s) {
    var row = data.cells[thingIndex[s.thing]];
    var prompts = row.filter(Boolean).map(function (e) { return promptOf(e, s.method); });
    console.log("CLIPig: " + s.thing + ", method " + s.method + "\n" + prompts.join("\n"));
  }

  function show(s) {
    if (state && state.thing === s.thing && state.method === s.method) return;
    state = s;
    var row = data.cells[thingIndex[s.thing]];
    figures.forEach(function (figure, i) { fill(figure, i, row[i], s.method); });
    thingSelect.value = s.thing;
    methodSelect.value = String(s.method);
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
    choose({ thing: data.things[i], method: state.method });
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
      choose({ thing: state.thing, method: Number(ev.key) });
    } else {
      return;
    }
    ev.preventDefault();
  }

  thingSelect.addEventListener("change", function () {
    choose({ thing: thingSelect.value, method: state.method });
  });
  methodSelect.addEventListener("change", function () {
    choose({ thing: state.thing, method: Number(methodSelect.value) });
  });
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
  show(parseState(location.hash) || data["default"]);
})();
