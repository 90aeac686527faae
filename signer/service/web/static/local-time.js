// Optional: shows <time> elements in the viewer's local time; the UTC text and the ISO
// title are already there without JavaScript. Also enables the "Copy PEM" button.
(function () {
  "use strict";
  var short = { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
  var long = Object.assign({ second: "2-digit", timeZoneName: "short" }, short);
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when)) { return; }
    el.textContent = when.toLocaleString(undefined, el.dataset.seconds ? long : short);
  });
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.value).then(function () {
        button.textContent = "Copied";
      });
    });
  });
})();
