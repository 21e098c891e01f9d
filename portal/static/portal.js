// SOARS portal: the only script. It tells the person their file is on its
// way after they press a download button (the download itself works without
// it: the form's answer redirects to the single-use link), and keeps the
// button from issuing a second link while the first one starts.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var status = document.querySelector("[data-download-status]");
  document.querySelectorAll("form[data-download]").forEach(function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button");
      if (status) {
        status.textContent =
          "Your file is being prepared. It will download in a moment; " +
          "the link works once and only for a few minutes.";
      }
      // Disabled after this tick, so the submission itself still goes out.
      window.setTimeout(function () {
        if (button) { button.disabled = true; }
      }, 0);
      window.setTimeout(function () {
        if (button) { button.disabled = false; }
      }, 8000);
    });
  });
});
