/* Sparklines of the sensor list: each cell carries its hourly means; uPlot draws them, without axes or cursor. */
"use strict";
(function () {
  function draw() {
    if (typeof uPlot === "undefined") return;
    document.querySelectorAll(".sm-sparkline[data-x]").forEach((cell) => {
      const x = JSON.parse(cell.dataset.x);
      const y = JSON.parse(cell.dataset.y);
      const range = [Number(cell.dataset.start), Number(cell.dataset.end)];
      new uPlot(
        {
          width: 120,
          height: 28,
          padding: [3, 1, 3, 1],
          legend: { show: false },
          cursor: { show: false },
          select: { show: false },
          scales: { x: { time: false, range: () => range } },
          axes: [{ show: false }, { show: false }],
          series: [{}, { stroke: "#417690", width: 1.25, fill: "rgba(65, 118, 144, 0.12)", points: { show: false } }],
        },
        [x, y],
        cell,
      );
      cell.dataset.drawn = "true";
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
