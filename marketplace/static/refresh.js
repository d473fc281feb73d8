// A part of a page that is still being prepared (an element with data-refresh-after="seconds")
// is fetched again after that many seconds and swapped in, until it no longer asks to be.
// Without JavaScript the page offers a link to reload it by hand.
(function () {
  "use strict";
  function schedule(box) {
    var seconds = parseFloat(box.getAttribute("data-refresh-after")) || 2;
    window.setTimeout(function () {
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          var fresh = html && new DOMParser().parseFromString(html, "text/html").getElementById(box.id);
          if (!fresh) { schedule(box); return; }
          box.replaceWith(fresh);
          if (fresh.hasAttribute("data-refresh-after")) { schedule(fresh); }
        })
        .catch(function () { schedule(box); });
    }, seconds * 1000);
  }
  var box = document.querySelector("[data-refresh-after][id]");
  if (box && window.fetch && window.DOMParser) { schedule(box); }
})();
