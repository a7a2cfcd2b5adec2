/* List filters. Drop-down filters (templates/admin/filter_select.html): choosing an option opens its filtered
   list. On a phone the filters come before the list (console.css) and start folded, except those in use, so the
   list is a screen down, not thousands of pixels. */
"use strict";
document.addEventListener("change", (event) => {
  const select = event.target.closest("select[data-sm-filter]");
  if (select) window.location.search = select.value;
});

(function () {
  function fold() {
    if (!window.matchMedia("(max-width: 767px)").matches) return;
    document.querySelectorAll("#changelist-filter details").forEach((details) => {
      const select = details.querySelector("select[data-sm-filter]");
      const first = details.querySelector("li");
      const unused = select ? select.selectedIndex <= 0 : first && first.classList.contains("selected");
      if (unused) details.open = false;
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fold);
  else fold();
})();
