/* Keeps the dashboard and the sensor page current while they are open. The element with data-live-url names
   the page's JSON endpoint (readings.admin_views: dashboard_live_view, sensor_live_view), polled every
   data-live-every seconds while the tab is visible (none while hidden; at once when it shows again after a
   period). Its answer carries the page's parts rendered afresh, swapped in by selector, and for the sensor page
   the chart's data, handed to the chart (static/js/admin/sensor_chart.js rebuilds it keeping its zoom). No
   reload: scroll position, focus elsewhere and zoom stay. The same element says how old the figures are. */
"use strict";
(function () {
  function init() {
    const live = document.querySelector("[data-live-url]");
    if (!live) return;
    const every = Math.max(5, Number(live.dataset.liveEvery) || 30) * 1000;
    let updated = Date.now();
    let busy = false;
    let failed = false;

    function say() {
      const seconds = Math.round((Date.now() - updated) / 1000);
      const age = seconds < 90 ? `${seconds} s` : `${Math.round(seconds / 60)} min`;
      live.textContent = `${failed ? "Could not refresh; last " : ""}updated ${age} ago${document.hidden ? " (paused)" : ""}`;
      live.dataset.age = String(seconds);
    }

    function apply(data) {
      const fresh = new DOMParser().parseFromString(data.html, "text/html");
      for (const selector of data.replace || []) {
        const now = fresh.querySelector(selector);
        const before = document.querySelector(selector);
        if (now && before) before.replaceWith(document.importNode(now, true));
      }
      const chart = document.getElementById("sm-chart");
      if (data.chart && chart) chart.dispatchEvent(new CustomEvent("sm-chart-data", { detail: data.chart }));
    }

    async function refresh() {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const response = await fetch(live.dataset.liveUrl + window.location.search, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        apply(await response.json());
        updated = Date.now();
        failed = false;
        live.dataset.refreshes = String(Number(live.dataset.refreshes || 0) + 1);
      } catch (error) {
        failed = true;
      } finally {
        busy = false;
        say();
      }
    }

    say();
    setInterval(say, 1000);
    setInterval(refresh, every);
    document.addEventListener("visibilitychange", () => {
      say();
      if (!document.hidden && Date.now() - updated >= every) refresh();
    });
    window.smLive = { refresh };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
