/* The sensor page's chart and the asset page's stacked charts. The server picked the points (at most ~2,000 per
   sensor, from the API's aggregates, in buckets no finer than the sensor reads); this hands them to uPlot, which
   draws, hovers and zooms, and adds what uPlot leaves to us: isolated points where data are sparse, fault and
   anomaly periods each in its own colour and lane, the admin's light or dark theme, one date format, touch (drag
   to zoom, tap to read), and on the asset page one cursor and one zoom for all the sensors. */
"use strict";
(function () {
  const HEIGHT = 320;
  const LANE_HEIGHT = 170;
  const AXIS_SIZE = 64; // fixed y axis width: stacked charts share their x pixels
  const MEAN = "#3d8fd1";
  const RANGE = "rgba(61, 143, 209, 0.45)";
  const RANGE_FILL = "rgba(61, 143, 209, 0.16)";
  const NORMAL = "rgba(46, 158, 79, 0.9)";
  const NORMAL_FILL = "rgba(46, 158, 79, 0.08)";
  // A colour per fault kind (readings.choices.FaultKind) and for anomalies, the same on every chart.
  const MARK_COLOURS = {
    anomaly: "#f76707",
    spike: "#e03131",
    dropout: "#868e96",
    stuck: "#ae3ec9",
    noise_burst: "#f59f00",
    level_shift: "#1098ad",
    drift: "#37b24d",
    degradation: "#c2255c",
    normal: "#74b816",
  };
  const SPARE_COLOURS = ["#7048e8", "#d9480f", "#0ca678", "#5c940d"];
  const MARK_LANE = 6; // px per mark series along the top of the plot
  // One date format across the console (the templates' Y-m-d H:i): ISO dates and 24-hour times, the date under a
  // time tick only where the day changes. Rows: [tick step (s), format, on year change, month, day, hour, minute,
  // second, 1 = append to the format].
  const NL = "\n";
  const YMD = "{YYYY}-{MM}-{DD}";
  const HM = "{HH}:{mm}";
  const TIME_TICKS = [
    [3600 * 24 * 365, "{YYYY}", null, null, null, null, null, null, 1],
    [3600 * 24 * 28, "{YYYY}-{MM}", null, null, null, null, null, null, 1],
    [3600 * 24, YMD, null, null, null, null, null, null, 1],
    [3600, HM, NL + YMD, null, NL + YMD, null, null, null, 1],
    [60, HM, NL + YMD, null, NL + YMD, null, null, null, 1],
    [1, HM + ":{ss}", NL + YMD, null, NL + YMD, null, null, null, 1],
  ];
  const plots = [];

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function markColour(mark, index) {
    return MARK_COLOURS[mark.key] || (mark.name === "Anomalies" && MARK_COLOURS.anomaly) || SPARE_COLOURS[index % SPARE_COLOURS.length];
  }

  function alpha(hex, a) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
  }

  // Points where the line cannot be drawn: a value with no value on either side. uPlot draws every point itself
  // when there is room for them (show), else only those this returns.
  function isolatedPoints(u, si, show) {
    if (show) return null;
    const ys = u.data[si];
    const [i0, i1] = u.series[0].idxs || [0, ys.length - 1];
    const found = [];
    for (let i = i0; i <= i1; i++) {
      if (ys[i] != null && ys[i - 1] == null && ys[i + 1] == null) found.push(i);
    }
    return found;
  }

  // Consecutive marked buckets of each mark series as [series index, from, to] periods.
  function markPeriods(u, d, first) {
    const width = d.bucket_seconds;
    const periods = [];
    d.marks.forEach((mark, m) => {
      let start = null;
      mark.values.forEach((v, i) => {
        if (v != null && start == null) start = d.x[i];
        const next = mark.values[i + 1];
        if (v != null && next == null) {
          periods.push([first + m, start, d.x[i] + width]);
          start = null;
        }
      });
    });
    // Longest first, so a long degradation never paints over the shorter faults inside it.
    return periods.sort((a, b) => b[2] - b[1] - (a[2] - a[1]));
  }

  function drawMarks(u, d, first, colours) {
    if (!d.marks.length) return;
    const { ctx, bbox } = u;
    const ratio = uPlot.pxRatio || 1;
    const lane = MARK_LANE * ratio;
    ctx.save();
    ctx.beginPath();
    ctx.rect(bbox.left, bbox.top, bbox.width, bbox.height);
    ctx.clip();
    for (const [si, from, to] of markPeriods(u, d, first)) {
      if (!u.series[si].show) continue;
      const m = si - first;
      const left = u.valToPos(from, "x", true);
      const right = Math.max(u.valToPos(to, "x", true), left + 2 * ratio);
      ctx.fillStyle = alpha(colours[m], 0.14);
      ctx.fillRect(left, bbox.top, right - left, bbox.height);
      // Its own lane along the top, in full colour: visible whatever overlaps it.
      ctx.fillStyle = colours[m];
      ctx.fillRect(left, bbox.top + m * lane, right - left, lane - ratio);
    }
    ctx.restore();
  }

  // Where buckets are about as wide as the sensor's interval, a reading a few seconds late or early lands in the
  // next bucket and leaves one empty: a hole of one bucket is bridged. Wider holes (and every hole where buckets
  // are much wider than the interval) stay gaps: the sensor was silent.
  function jitterGaps(d) {
    const bridge = d.interval_seconds && d.bucket_seconds <= 2 * d.interval_seconds;
    return (u, si, i0, i1, gaps) => {
      if (!bridge || d.x.length < 2) return gaps;
      const bucket = u.valToPos(d.x[0] + d.bucket_seconds, "x", true) - u.valToPos(d.x[0], "x", true);
      return gaps.filter(([from, to]) => to - from > 2.5 * bucket);
    };
  }

  function build(root, d, options) {
    const unit = d.unit ? " " + d.unit : "";
    const gaps = jitterGaps(d);
    const fmt = (v) => (v == null ? "–" : +v.toPrecision(5) + unit);
    const constant = (value) => d.x.map(() => value);
    const points = { size: 5, filter: isolatedPoints };
    const series = [
      { label: "Time", value: "{YYYY}-{MM}-{DD} {HH}:{mm}" },
      { label: "Mean", stroke: MEAN, width: 1.5, gaps, value: (u, v) => fmt(v), points: { ...points, fill: MEAN } },
      { label: "Min", stroke: RANGE, width: 1, gaps, value: (u, v) => fmt(v), points: { show: false } },
      { label: "Max", stroke: RANGE, width: 1, gaps, value: (u, v) => fmt(v), points: { show: false } },
    ];
    const data = [d.x, d.avg, d.min, d.max];
    const bands = [{ series: [3, 2], fill: RANGE_FILL }];
    let low = null;
    if (d.normal_min != null) {
      series.push({ label: "Normal low", stroke: NORMAL, dash: [6, 4], width: 1, value: () => fmt(d.normal_min), points: { show: false } });
      data.push(constant(d.normal_min));
      low = series.length - 1;
    }
    if (d.normal_max != null) {
      series.push({ label: "Normal high", stroke: NORMAL, dash: [6, 4], width: 1, value: () => fmt(d.normal_max), points: { show: false } });
      data.push(constant(d.normal_max));
      if (low != null) bands.push({ series: [series.length - 1, low], fill: NORMAL_FILL });
    }
    const firstMark = series.length;
    const colours = d.marks.map(markColour);
    d.marks.forEach((mark, i) => {
      series.push({
        label: mark.name,
        scale: "marks",
        stroke: colours[i],
        fill: alpha(colours[i], 0.3),
        width: 0,
        paths: () => null, // drawn by drawMarks, behind the lines
        points: { show: false },
        value: (u, v, si, idx) => (idx == null || v == null ? "–" : mark.labels[idx] || ""),
      });
      data.push(mark.values);
    });

    const axisColour = () => cssVar("--body-fg", "#333");
    const gridColour = () => cssVar("--hairline-color", "#e8e8e8");
    const axis = { stroke: axisColour, grid: { stroke: gridColour, width: 1 }, ticks: { stroke: gridColour, width: 1 } };
    const opts = {
      width: root.clientWidth,
      height: options.height,
      series,
      bands,
      // Room on the right for the last tick's label.
      padding: [8, 28, 0, 0],
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), d.timezone),
      scales: { x: { time: true }, marks: { auto: false, range: [0, 1] } },
      axes: [
        // Room for the widest label ("2026-01-31" under a time) so ticks never run together when zoomed.
        { ...axis, values: TIME_TICKS, space: 80, size: 50 },
        { ...axis, label: d.unit || "", size: AXIS_SIZE, labelSize: 18 },
      ],
      cursor: { drag: { x: true, y: false, setScale: true } },
      hooks: {
        drawAxes: [(u) => drawMarks(u, d, firstMark, colours)],
        draw: [
          (u) => {
            root.dataset.drawn = "true";
            root.dataset.drawnPoints = String(u.data[1].filter((v) => v != null).length);
          },
        ],
        setScale: [(u, key) => key === "x" && options.onZoom && options.onZoom(u)],
      },
    };
    if (options.sync) opts.cursor.sync = { key: options.sync };
    const plot = new uPlot(opts, data, root);
    touch(plot);
    plots.push(plot);
    return plot;
  }

  // Touch: a sideways drag zooms (vertical drags still scroll the page), a tap moves the cursor there so the
  // legend reads the values, a double tap zooms back out.
  function touch(u) {
    const over = u.over;
    let x0 = null;
    let moved = false;
    let lastTap = 0;
    const at = (t) => {
      const rect = over.getBoundingClientRect();
      return [Math.min(Math.max(t.clientX - rect.left, 0), rect.width), Math.min(Math.max(t.clientY - rect.top, 0), rect.height)];
    };
    over.addEventListener("touchstart", (e) => {
      if (e.touches.length !== 1) return (x0 = null);
      [x0] = at(e.touches[0]);
      moved = false;
    }, { passive: true });
    over.addEventListener("touchmove", (e) => {
      if (x0 == null || e.touches.length !== 1) return;
      const [x] = at(e.touches[0]);
      if (!moved && Math.abs(x - x0) < 8) return;
      moved = true;
      e.preventDefault();
      u.setSelect({ left: Math.min(x, x0), width: Math.abs(x - x0), top: 0, height: over.clientHeight }, false);
    }, { passive: false });
    over.addEventListener("touchend", (e) => {
      if (x0 == null) return;
      const [x, y] = at(e.changedTouches[0]);
      e.preventDefault(); // no emulated mouse events: they would move the cursor or start a drag of their own
      if (moved) {
        const [a, b] = [Math.min(x, x0), Math.max(x, x0)];
        u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
        u.setScale("x", { min: u.posToVal(a, "x"), max: u.posToVal(b, "x") });
      } else if (e.timeStamp - lastTap < 350) {
        const xs = u.data[0];
        u.setScale("x", { min: xs[0], max: xs[xs.length - 1] });
      } else {
        u.setCursor({ left: x, top: y });
      }
      lastTap = moved ? 0 : e.timeStamp;
      x0 = null;
    }, { passive: false });
  }

  function zoomLinker(link, first, last) {
    return (u) => {
      if (!link) return;
      const { min, max } = u.scales.x;
      const zoomed = min > first || max < last;
      link.hidden = !zoomed;
      if (zoomed) {
        const params = new URLSearchParams({
          range: "custom",
          from: new Date(min * 1e3).toISOString(),
          to: new Date(max * 1e3).toISOString(),
        });
        link.href = "?" + params.toString();
      }
    };
  }

  function fit(plot, root, height) {
    new ResizeObserver(() => {
      if (plot.width !== root.clientWidth) plot.setSize({ width: root.clientWidth, height });
    }).observe(root);
  }

  function sensorPage() {
    const root = document.getElementById("sm-chart");
    const source = document.getElementById("sm-chart-data");
    if (!root || !source) return;
    let d = JSON.parse(source.textContent);
    const linker = zoomLinker(document.getElementById("sm-zoom-load"), d.x[0], d.x[d.x.length - 1]);
    const options = { height: HEIGHT, onZoom: linker };
    let plot = build(root, d, options);
    window.smSensorChart = plot;
    new ResizeObserver(() => {
      if (plot.width !== root.clientWidth) plot.setSize({ width: root.clientWidth, height: HEIGHT });
    }).observe(root);
    // Fresh data from the live refresh (live.js): the chart is rebuilt with it and keeps a zoom staff made.
    root.addEventListener("sm-chart-data", (event) => {
      const { min, max } = plot.scales.x;
      const zoomed = d.x.length > 0 && (min > d.x[0] || max < d.x[d.x.length - 1]);
      plots.splice(plots.indexOf(plot), 1);
      plot.destroy();
      d = event.detail;
      plot = build(root, d, options);
      if (zoomed) plot.setScale("x", { min, max });
      window.smSensorChart = plot;
    });
  }

  // The asset page: a chart per sensor, stacked on one time axis, one cursor (uPlot's sync) and one zoom.
  function assetPage() {
    const source = document.getElementById("sm-asset-charts-data");
    if (!source) return;
    const charts = JSON.parse(source.textContent);
    const linked = [];
    let syncing = false;
    const link = document.getElementById("sm-zoom-load");
    const linker = charts.length ? zoomLinker(link, charts[0].start, charts[0].end) : null;
    const onZoom = (u) => {
      if (syncing) return;
      syncing = true;
      const { min, max } = u.scales.x;
      for (const other of linked) if (other !== u) other.setScale("x", { min, max });
      syncing = false;
      linker(u);
    };
    document.querySelectorAll(".sm-asset-chart").forEach((root) => {
      const d = charts[Number(root.dataset.index)];
      const plot = build(root, d, { height: LANE_HEIGHT, sync: source.dataset.sync || "sm-asset", onZoom });
      linked.push(plot);
      fit(plot, root, LANE_HEIGHT);
    });
    // The same span on every chart, whatever each sensor's bucket width.
    if (charts.length) {
      syncing = true;
      for (const plot of linked) plot.setScale("x", { min: charts[0].start, max: charts[0].end });
      syncing = false;
    }
    window.smAssetCharts = linked;
  }

  // The admin's theme switch (data-theme on <html>) and the system's preference redraw axes in the new colours.
  function followTheme() {
    const redraw = () => plots.forEach((plot) => plot.redraw(false, true));
    new MutationObserver(redraw).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redraw);
  }

  function init() {
    if (typeof uPlot === "undefined") return;
    sensorPage();
    assetPage();
    followTheme();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
