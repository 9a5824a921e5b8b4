// berth's web UI: search as you type, copy buttons and a search shortcut.
// Every page works without this file.
"use strict";

(function () {
  // Copy buttons beside every command and digest marked data-copy.
  function addCopyButtons(root) {
    if (!navigator.clipboard) return;
    root.querySelectorAll("[data-copy]").forEach(function (el) {
      if (el.dataset.copyReady) return;
      el.dataset.copyReady = "1";
      var b = document.createElement("button");
      b.type = "button";
      b.className = "copy";
      b.textContent = "Copy";
      b.setAttribute("aria-label", "Copy " + el.textContent);
      b.addEventListener("click", function () {
        navigator.clipboard.writeText(el.textContent).then(function () {
          b.textContent = "Copied";
          b.classList.add("done");
          setTimeout(function () { b.textContent = "Copy"; b.classList.remove("done"); }, 1500);
        });
      });
      el.insertAdjacentElement("afterend", b);
    });
  }

  // Search as you type: the results section is fetched again (the same
  // page, its results alone) a moment after the last key.
  function liveSearch(form) {
    var input = form.querySelector("input[type=search]");
    var target = document.getElementById(form.dataset.live);
    if (!input || !target) return;
    var timer = null, seq = 0;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var mine = ++seq;
        var q = input.value.trim();
        var params = new URLSearchParams();
        if (q) params.set("q", q);
        var url = form.getAttribute("action") + (q ? "?" + params.toString() : "");
        params.set("fragment", "results");
        fetch(form.getAttribute("action") + "?" + params.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
          .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
          .then(function (html) {
            if (mine !== seq) return;
            var doc = new DOMParser().parseFromString(html, "text/html");
            var fresh = doc.getElementById(form.dataset.live);
            if (!fresh) return;
            target.replaceChildren.apply(target, Array.from(fresh.childNodes));
            history.replaceState(null, "", url);
          })
          .catch(function () {});
      }, 200);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    addCopyButtons(document);
    document.querySelectorAll("form[data-live]").forEach(liveSearch);
    // "/" focuses the search, as on most sites with one.
    document.addEventListener("keydown", function (e) {
      if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
      var t = e.target;
      if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      var q = document.getElementById("q");
      if (q) { e.preventDefault(); q.focus(); q.select(); }
    });
  });
})();
