// The live timeline of an order page: redraws the page's order part when the order moves.
(function () {
  "use strict";
  var box = document.getElementById("order-live");
  if (!box || !window.EventSource || !window.fetch) { return; }
  var version = parseInt(box.getAttribute("data-version"), 10) || 0;
  var status = document.getElementById("live-status");
  var source = new EventSource(box.getAttribute("data-live"));
  var busy = false;

  function redraw(text) {
    if (busy) { return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("order-live");
        var focused = document.activeElement && box.contains(document.activeElement);
        if (fresh && !focused) {
          box.replaceWith(fresh);
          box = fresh;
        }
        if (status && text) { status.textContent = text; }
      })
      .finally(function () { busy = false; });
  }

  function onNews(event) {
    var news = JSON.parse(event.data);
    if (news.version > version) {
      version = news.version;
      redraw(news.text);
    }
    if (["confirmed", "cancelled", "failed"].indexOf(news.state) >= 0) { source.close(); }
  }
  source.addEventListener("state", onNews);
  source.addEventListener("move", onNews);
})();
