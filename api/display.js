"use strict";
// The community display page's refresh (api/display.py): every minute (the page's data-refresh-s), the
// page's own figures from `<page>/data`, put in place as text (never as HTML). On an error the last
// figures stay, marked stale; a 404 (the display was turned off or its link replaced) reloads the
// page, which then says so.
(function () {
  var root = document.documentElement;
  var lang = root.getAttribute("lang") || "zh-CN";
  var everyMs = 1000 * (Number(root.getAttribute("data-refresh-s")) || 60);
  function show(data) {
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      var key = el.getAttribute("data-figure");
      if (!Object.prototype.hasOwnProperty.call(data.texts, key)) return;
      el.textContent = data.texts[key];
      var value = data.figures[key];
      el.setAttribute("data-value", typeof value === "number" ? String(value) : "");
    });
    document.querySelectorAll("meter[data-meter]").forEach(function (meter) {
      var value = data.figures[meter.getAttribute("data-meter")];
      if (typeof value === "number") meter.value = value;
    });
    root.removeAttribute("data-stale");
  }
  function refresh() {
    var url = location.pathname.replace(/\/+$/, "") + "/data?lang=" + encodeURIComponent(lang);
    fetch(url, { cache: "no-store", credentials: "omit", headers: { "Accept-Language": lang } })
      .then(function (response) {
        if (response.status === 404) { location.reload(); return null; }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) { if (data) show(data); })
      .catch(function () { root.setAttribute("data-stale", ""); });
  }
  setInterval(refresh, everyMs);
})();
