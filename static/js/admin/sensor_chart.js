/* The sensor page's chart. The server picked the points (at most ~2,000, from the API's aggregates); this
   hands them to uPlot, which draws, hovers and zooms, and wires the "load the zoomed range" link. */
"use strict";
(function () {
  const HEIGHT = 320;
  const MARK_COLOURS = [
    ["rgba(180, 35, 24, 0.9)", "rgba(180, 35, 24, 0.14)"],
    ["rgba(124, 58, 237, 0.9)", "rgba(124, 58, 237, 0.14)"],
    ["rgba(161, 92, 0, 0.9)", "rgba(161, 92, 0, 0.14)"],
  ];

  function build(root, d) {
    const unit = d.unit ? " " + d.unit : "";
    const fmt = (v) => (v == null ? "–" : +v.toPrecision(5) + unit);
    const constant = (value) => d.x.map(() => value);
    const series = [
      { label: "Time", value: "{YYYY}-{MM}-{DD} {HH}:{mm}" },
      { label: "Mean", stroke: "#264b5d", width: 1.5, value: (u, v) => fmt(v) },
      { label: "Min", stroke: "rgba(65, 118, 144, 0.55)", width: 1, value: (u, v) => fmt(v) },
      { label: "Max", stroke: "rgba(65, 118, 144, 0.55)", width: 1, value: (u, v) => fmt(v) },
    ];
    const data = [d.x, d.avg, d.min, d.max];
    const bands = [{ series: [3, 2], fill: "rgba(65, 118, 144, 0.15)" }];
    let low = null;
    if (d.normal_min != null) {
      series.push({ label: "Normal low", stroke: "rgba(31, 122, 58, 0.8)", dash: [6, 4], width: 1, value: () => fmt(d.normal_min) });
      data.push(constant(d.normal_min));
      low = series.length - 1;
    }
    if (d.normal_max != null) {
      series.push({ label: "Normal high", stroke: "rgba(31, 122, 58, 0.8)", dash: [6, 4], width: 1, value: () => fmt(d.normal_max) });
      data.push(constant(d.normal_max));
      if (low != null) bands.push({ series: [series.length - 1, low], fill: "rgba(31, 122, 58, 0.08)" });
    }
    d.marks.forEach((mark, i) => {
      const [stroke, fill] = MARK_COLOURS[i % MARK_COLOURS.length];
      series.push({
        label: mark.name,
        scale: "marks",
        stroke,
        fill,
        width: 0,
        // Full-height bars over the marked buckets: consecutive ones join into a shaded period.
        paths: uPlot.paths.bars({ size: [1, Infinity, 2], align: 1 }),
        points: { show: false },
        value: (u, v, si, idx) => (idx == null || v == null ? "–" : mark.labels[idx] || ""),
      });
      data.push(mark.values);
    });

    const zoomLink = document.getElementById("sm-zoom-load");
    const opts = {
      width: root.clientWidth,
      height: HEIGHT,
      series,
      bands,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), d.timezone),
      scales: { x: { time: true }, marks: { auto: false, range: [0, 1] } },
      axes: [{}, { label: d.unit || "" }],
      cursor: { drag: { x: true, y: false, setScale: true } },
      hooks: {
        draw: [
          (u) => {
            root.dataset.drawn = "true";
            root.dataset.drawnPoints = String(u.data[1].filter((v) => v != null).length);
          },
        ],
        setScale: [
          (u, key) => {
            if (key !== "x" || !zoomLink) return;
            const { min, max } = u.scales.x;
            const zoomed = d.x.length > 0 && (min > d.x[0] || max < d.x[d.x.length - 1]);
            zoomLink.hidden = !zoomed;
            if (zoomed) {
              const params = new URLSearchParams({
                range: "custom",
                from: new Date(min * 1e3).toISOString(),
                to: new Date(max * 1e3).toISOString(),
              });
              zoomLink.href = "?" + params.toString();
            }
          },
        ],
      },
    };
    return new uPlot(opts, data, root);
  }

  function init() {
    const root = document.getElementById("sm-chart");
    const source = document.getElementById("sm-chart-data");
    if (!root || !source || typeof uPlot === "undefined") return;
    const plot = build(root, JSON.parse(source.textContent));
    window.smSensorChart = plot;
    new ResizeObserver(() => {
      if (plot.width !== root.clientWidth) plot.setSize({ width: root.clientWidth, height: HEIGHT });
    }).observe(root);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
