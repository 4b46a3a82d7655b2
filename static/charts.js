// Backstop's time-series charts, drawn with the vendored uPlot (uplot.min.js,
// loaded before this file). A page asks for a chart with markup alone:
//
//   <div class="chart" data-chart data-chart-label="Stored size, last 30 days">
//     <script type="application/json">
//       {"series":[{"label":"Stored","unit":"bytes"}],
//        "x":[1764028800,1764115200],"y":[[1073741824,null]]}
//     </script>
//     <table>…the same numbers, for screen readers and pages without script…</table>
//   </div>
//
// x holds unix seconds in ascending order; y holds one array per series, as
// long as x, with null for a gap; unit is "bytes", "seconds" or "count" (the
// default). Series of one unit share a value axis; a second unit gets its own
// on the right. data-chart-height sets the plot's height in CSS pixels
// (default 160; the legend below adds to it).
//
// Once drawn, the chart sits first in the element, in a role="img" wrapper
// labelled by data-chart-label, and every other child (the fallback) gets the
// visually-hidden class: out of sight but still read by screen readers, so it
// should hold nothing focusable. With no data point, bad JSON or no uPlot,
// nothing is drawn and the fallback stays as rendered. data-chart-state tells
// which happened: "drawn", "empty" or "invalid".
(function () {
  "use strict";

  if (!window.uPlot) {
    return;
  }

  var defaultHeight = 160;

  // ---- Values ----

  // trim rounds v to at most digits decimals and drops trailing zeros:
  // trim(1.50, 2) = "1.5".
  function trim(v, digits) {
    return String(+v.toFixed(digits));
  }

  var byteUnits = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

  // bytes mirrors web.Bytes in Go, so that the legend agrees with the
  // server-rendered fallback: "512 B", "1.5 KiB", "85 MiB".
  function bytes(v) {
    if (v < 0) {
      return "-" + bytes(-v);
    }
    var i = 0;
    while (v >= 1024 && i < byteUnits.length - 1) {
      v /= 1024;
      i++;
    }
    if (i === 0) {
      return Math.round(v) + " B";
    }
    if (v < 9.95) {
      return v.toFixed(1) + " " + byteUnits[i];
    }
    if (v < 1023.5 || i === byteUnits.length - 1) {
      return v.toFixed(0) + " " + byteUnits[i];
    }
    return "1.0 " + byteUnits[i + 1];
  }

  // duration mirrors web.Duration in Go, "42 s", "3 min 12 s", except that
  // it tells apart times under a second ("0.25 s"), which a chart may be of.
  function duration(v) {
    var s = Math.floor(Math.abs(v));
    function two(a, ua, b, ub) {
      return a + " " + ua + (b ? " " + b + " " + ub : "");
    }
    if (s < 1) {
      return trim(Math.abs(v), 2) + " s";
    }
    if (s < 60) {
      return s + " s";
    }
    if (s < 3600) {
      return two(Math.floor(s / 60), "min", s % 60, "s");
    }
    if (s < 86400) {
      return two(Math.floor(s / 3600), "h", Math.floor(s % 3600 / 60), "min");
    }
    return two(Math.floor(s / 86400), "d", Math.floor(s % 86400 / 3600), "h");
  }

  // count writes a count as a plain number: "1500000".
  function count(v) {
    return trim(v, 2);
  }

  // powers lists base^k times each multiplier, for k from k0 to k1.
  function powers(base, k0, k1, mults) {
    var out = [];
    for (var k = k0; k <= k1; k++) {
      for (var i = 0; i < mults.length; i++) {
        out.push(mults[i] * Math.pow(base, k));
      }
    }
    return out;
  }

  // units maps a series' unit to its legend format and to what its axis
  // ticks count in: the largest of names that the biggest value reaches, so
  // that all ticks read in one unit ("0.5 GiB", "1 GiB", "1.5 GiB"), with
  // ticks no finer than min.
  var units = {
    bytes: {
      value: bytes,
      names: [[1, "B"], [1024, "KiB"], [Math.pow(1024, 2), "MiB"], [Math.pow(1024, 3), "GiB"],
        [Math.pow(1024, 4), "TiB"], [Math.pow(1024, 5), "PiB"], [Math.pow(1024, 6), "EiB"]],
      min: 1
    },
    seconds: {
      value: duration,
      names: [[1, "s"], [60, "min"], [3600, "h"], [86400, "d"]],
      min: 0.001
    },
    count: { value: count, names: [[1, ""]], min: 1 }
  };

  // steps are the tick spacings an axis may use, in its unit; uPlot takes the
  // smallest that leaves room between the labels.
  var steps = powers(10, -3, 15, [1, 2, 2.5, 5]);

  // ticks returns the tick spacings and labels for an axis of unit whose
  // values reach max.
  function ticks(unit, max) {
    var u = units[unit];
    var name = u.names[0];
    u.names.forEach(function (n) {
      if (max >= n[0]) {
        name = n;
      }
    });
    return {
      incrs: steps.map(function (s) { return s * name[0]; }).filter(function (v) {
        // Counts and bytes come whole.
        return v >= u.min && (unit === "seconds" || v % 1 === 0);
      }),
      label: function (v) {
        return trim(v / name[0], 3) + (name[1] ? " " + name[1] : "");
      }
    };
  }

  // ---- Times, in the browser's time zone ----

  function dateFormat(opts) {
    try {
      return new Intl.DateTimeFormat(undefined, opts);
    } catch (e) {
      return { format: function (d) { return d.toLocaleString(); } };
    }
  }

  var fmtFull = dateFormat({ year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
  var fmtYear = dateFormat({ year: "numeric" });
  var fmtMonth = dateFormat({ year: "numeric", month: "short" });
  var fmtDay = dateFormat({ month: "short", day: "numeric" });
  var fmtMinute = dateFormat({ hour: "numeric", minute: "2-digit" });
  var fmtSecond = dateFormat({ hour: "numeric", minute: "2-digit", second: "2-digit" });

  // timeSpace is the room, in CSS pixels, between ticks on the time axis: the
  // width of a long label in this locale, plus a gap.
  function timeSpace(font) {
    var ctx = document.createElement("canvas").getContext("2d");
    ctx.font = font;
    var d = new Date(2001, 11, 22, 22, 22, 22);
    return Math.max(
      ctx.measureText(fmtMinute.format(d)).width,
      ctx.measureText(fmtDay.format(d)).width
    ) + 16;
  }

  // timeTicks labels the time axis in the browser's locale and time zone: a
  // date for ticks a day or more apart and at midnight, a time of day otherwise.
  function timeTicks(u, splits, axisIdx, space, incr) {
    return splits.map(function (t) {
      var d = new Date(t * 1000);
      if (incr >= 365 * 86400) {
        return fmtYear.format(d);
      }
      if (incr >= 28 * 86400) {
        return fmtMonth.format(d);
      }
      if (incr >= 86400 || d.getHours() + d.getMinutes() + d.getSeconds() === 0) {
        return fmtDay.format(d);
      }
      return (incr < 60 ? fmtSecond : fmtMinute).format(d);
    });
  }

  // ---- Colours ----

  var darkQuery = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  var forcedQuery = window.matchMedia ? window.matchMedia("(forced-colors: active)") : null;

  // Series after the first are also dashed, so that they differ in more
  // than colour.
  var dashes = [null, [6, 4], [2, 3], [10, 3, 2, 3]];

  // colours reads app.css's palette where the chart is, so that it follows
  // light and dark mode: a canvas takes no CSS variables itself. Each colour
  // is resolved through a probe element, which also turns the system colours
  // of forced colours mode into the user's own.
  function colours(el) {
    var probe = document.createElement("span");
    probe.style.forcedColorAdjust = "none";
    el.appendChild(probe);
    function resolve(colour) {
      probe.style.color = colour;
      return getComputedStyle(probe).color;
    }
    var c;
    if (forcedQuery && forcedQuery.matches) {
      c = {
        axis: resolve("CanvasText"),
        grid: resolve("GrayText"),
        surface: resolve("Canvas"),
        series: [resolve("Highlight"), resolve("CanvasText")]
      };
    } else {
      c = {
        axis: resolve("var(--muted, #55606d)"),
        grid: resolve("var(--border, #dfe3e8)"),
        surface: resolve("var(--surface, #ffffff)"),
        series: [
          resolve("var(--info-dot, #2f6feb)"),
          resolve("var(--ok-dot, #1f9d47)"),
          resolve("var(--warn-dot, #d08700)"),
          resolve("var(--neutral-dot, #8a94a1)"),
          resolve("var(--danger-dot, #d93025)")
        ]
      };
    }
    c.font = "12px " + getComputedStyle(el).fontFamily;
    el.removeChild(probe);
    return c;
  }

  // ---- Data ----

  // columns turns the JSON into uPlot's [x, y1, y2, …], or returns null when
  // it is malformed.
  function columns(spec) {
    if (!spec || !Array.isArray(spec.x) || !Array.isArray(spec.y) ||
        !Array.isArray(spec.series) || spec.series.length === 0 ||
        spec.series.length !== spec.y.length) {
      return null;
    }
    var data = [spec.x];
    for (var i = 0; i < spec.y.length; i++) {
      var ys = spec.y[i];
      if (!Array.isArray(ys) || ys.length !== spec.x.length) {
        return null;
      }
      data.push(ys.map(function (y) {
        return typeof y === "number" && isFinite(y) ? y : null;
      }));
    }
    return data;
  }

  // hasPoint reports whether data holds a value to draw.
  function hasPoint(data) {
    return data.slice(1).some(function (ys) {
      return ys.some(function (y) { return y !== null; });
    });
  }

  // ---- Charts ----

  // fitLabels sizes a value axis to its longest label.
  function fitLabels(u, values, axisIdx, cycleNum) {
    var axis = u.axes[axisIdx];
    if (cycleNum > 1) {
      return axis._size;
    }
    var size = axis.ticks.size + axis.gap;
    var longest = (values || []).reduce(function (a, b) {
      return b.length > a.length ? b : a;
    }, "");
    if (longest) {
      u.ctx.font = axis.font[0];
      size += u.ctx.measureText(longest).width / devicePixelRatio;
    }
    return Math.ceil(size) + 2;
  }

  // fromZero starts a value axis at zero: these are sizes, durations and
  // counts, whose height should be comparable at a glance.
  function fromZero(u, min, max) {
    if (min == null || max == null) {
      return [0, 1];
    }
    return [Math.min(0, min), max > 0 ? max * 1.08 : 1];
  }

  // options builds the uPlot options for chart c at its current width.
  function options(c) {
    var col = colours(c.el);
    var x = c.data[0];
    var last = x.length - 1;
    // The legend shows the values under the cursor, and the latest ones when
    // the cursor is elsewhere.
    var series = [{
      label: "Time",
      value: function (u, v, si, idx) {
        return fmtFull.format(new Date(x[idx == null ? last : idx] * 1000));
      }
    }];
    // A single time gets an hour either side, where uPlot would span it
    // with 1000 days (it takes 86400 for milliseconds).
    var scales = {
      x: {
        time: true,
        range: function (u, min, max) {
          return x[0] === x[last] ? [x[0] - 3600, x[0] + 3600] : [min, max];
        }
      }
    };
    var axes = [{
      stroke: col.axis,
      font: col.font,
      grid: { stroke: col.grid, width: 1 },
      ticks: { stroke: col.grid, width: 1 },
      space: timeSpace(col.font),
      values: timeTicks
    }];
    // max is the biggest value of each unit, which sets its axis's ticks.
    var max = {};
    c.spec.series.forEach(function (s, i) {
      var unit = units[s.unit] ? s.unit : "count";
      var ys = c.data[i + 1];
      ys.forEach(function (y) {
        if (y !== null) {
          max[unit] = Math.max(max[unit] || 0, Math.abs(y));
        }
      });
      var line = {
        label: String(s.label || ""),
        scale: unit,
        stroke: col.series[i % col.series.length],
        width: 1.5,
        points: { fill: col.surface },
        value: function (u, v, si, idx) {
          var y = idx == null ? ys[last] : v;
          return y == null ? "—" : units[unit].value(y);
        }
      };
      if (dashes[i % dashes.length]) {
        line.dash = dashes[i % dashes.length];
      }
      series.push(line);
    });
    // One axis per unit: the first on the left with grid lines, any other on
    // the right.
    series.slice(1).forEach(function (s) {
      var unit = s.scale;
      if (scales[unit]) {
        return;
      }
      var first = axes.length === 1;
      var t = ticks(unit, max[unit] || 0);
      scales[unit] = { range: fromZero };
      axes.push({
        scale: unit,
        side: first ? 3 : 1,
        stroke: col.axis,
        font: col.font,
        grid: { show: first, stroke: col.grid, width: 1 },
        ticks: { stroke: col.grid, width: 1 },
        incrs: t.incrs,
        values: function (u, splits) {
          return splits.map(t.label);
        },
        size: fitLabels
      });
    });
    return {
      width: c.width,
      height: c.height,
      series: series,
      scales: scales,
      axes: axes,
      // No drag to zoom: a chart here is read, not explored.
      cursor: { drag: { x: false, y: false, setScale: false } }
    };
  }

  function plot(c) {
    c.plot = new window.uPlot(options(c), c.data, c.wrapper);
  }

  // draw draws the chart of el from the JSON in source; it returns the chart,
  // or null when there is nothing to draw.
  function draw(el, source) {
    el.backstopChartSource = source;
    var spec;
    try {
      spec = JSON.parse(source.textContent);
    } catch (e) {
      el.setAttribute("data-chart-state", "invalid");
      return null;
    }
    var data = columns(spec);
    if (!data || !hasPoint(data)) {
      el.setAttribute("data-chart-state", data ? "empty" : "invalid");
      return null;
    }
    var wrapper = document.createElement("div");
    wrapper.className = "chart-plot";
    wrapper.setAttribute("role", "img");
    wrapper.setAttribute("aria-label", el.getAttribute("data-chart-label") ||
      "Chart of " + spec.series.map(function (s) { return s.label || ""; }).join(", "));
    el.insertBefore(wrapper, el.firstChild);
    for (var i = 0; i < el.children.length; i++) {
      var child = el.children[i];
      if (child !== wrapper && child.tagName !== "SCRIPT") {
        child.classList.add("visually-hidden");
      }
    }
    var height = parseInt(el.getAttribute("data-chart-height"), 10);
    var c = {
      el: el,
      source: source,
      spec: spec,
      data: data,
      wrapper: wrapper,
      width: wrapper.clientWidth,
      height: height > 0 ? height : defaultHeight,
      plot: null,
      observer: null
    };
    plot(c);
    if (window.ResizeObserver) {
      c.observer = new ResizeObserver(function () {
        resize(c);
      });
      c.observer.observe(wrapper);
    }
    el.setAttribute("data-chart-state", "drawn");
    return c;
  }

  // resize fits chart c to its wrapper's width, which follows the page's.
  function resize(c) {
    var w = c.wrapper.clientWidth;
    if (w !== c.width) {
      c.width = w;
      c.plot.setSize({ width: w, height: c.height });
    }
  }

  // remove lets go of chart c, whose element htmx has swapped out or refilled.
  function remove(c) {
    if (c.observer) {
      c.observer.disconnect();
    }
    c.plot.destroy();
    if (c.wrapper.parentNode) {
      c.wrapper.parentNode.removeChild(c.wrapper);
    }
  }

  // charts are those drawn and still on the page.
  var charts = [];

  // scan draws every chart not drawn yet, or whose data htmx has replaced,
  // and lets go of those htmx has swapped out.
  function scan() {
    charts = charts.filter(function (c) {
      if (document.contains(c.el) && c.el.contains(c.source)) {
        return true;
      }
      remove(c);
      return false;
    });
    var els = document.querySelectorAll("[data-chart]");
    for (var i = 0; i < els.length; i++) {
      var source = els[i].querySelector(':scope > script[type="application/json"]');
      if (source && els[i].backstopChartSource !== source) {
        var c = draw(els[i], source);
        if (c) {
          charts.push(c);
        }
      }
    }
  }

  // redraw draws every chart again in the colours of the new scheme.
  function redraw() {
    charts.forEach(function (c) {
      c.plot.destroy();
      plot(c);
    });
  }

  [darkQuery, forcedQuery].forEach(function (q) {
    if (q && q.addEventListener) {
      q.addEventListener("change", redraw);
    } else if (q && q.addListener) {
      q.addListener(redraw);
    }
  });
  if (!window.ResizeObserver) {
    window.addEventListener("resize", function () {
      charts.forEach(resize);
    });
  }

  document.addEventListener("htmx:afterSettle", scan);
  document.addEventListener("htmx:wsAfterMessage", scan);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", scan);
  } else {
    scan();
  }
})();
