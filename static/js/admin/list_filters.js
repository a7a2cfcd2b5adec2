/* Drop-down list filters (templates/admin/filter_select.html): choosing an option opens its filtered list. */
"use strict";
document.addEventListener("change", (event) => {
  const select = event.target.closest("select[data-sm-filter]");
  if (select) window.location.search = select.value;
});
