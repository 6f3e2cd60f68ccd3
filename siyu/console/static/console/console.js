// siyu console: draws ECharts charts declared in the page, and closes dropdowns on outside clicks.
// Chart data comes from <script type="application/json"> blocks (Django's json_script), never from inline code.
(function () {
  "use strict";

  var PALETTE = ["#1f6feb", "#18a058", "#f0a020", "#d03050", "#7c4dff", "#0f7f86"];
  var charts = [];

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function weekly(el, data) {
    return {
      color: PALETTE,
      tooltip: { trigger: "axis" },
      legend: { top: 0, right: 0 },
      grid: { left: 40, right: 44, top: 34, bottom: 28 },
      xAxis: { type: "category", data: data.weeks, axisTick: { alignWithLabel: true } },
      yAxis: [
        { type: "value", minInterval: 1, name: el.dataset.labelCustomers },
        { type: "value", minInterval: 1, name: el.dataset.labelOrders, splitLine: { show: false } },
      ],
      series: [
        { name: el.dataset.labelCustomers, type: "line", smooth: true, showSymbol: false, areaStyle: { opacity: 0.08 }, data: data.customers },
        { name: el.dataset.labelOrders, type: "line", smooth: true, showSymbol: false, yAxisIndex: 1, data: data.orders },
      ],
    };
  }

  function bar(el, data) {
    return {
      color: PALETTE,
      tooltip: { trigger: "axis" },
      grid: { left: 56, right: 16, top: 16, bottom: 28 },
      xAxis: { type: "category", data: data.labels, axisLabel: { interval: 0 } },
      yAxis: { type: "value" },
      series: [{ name: el.dataset.seriesLabel, type: "bar", barMaxWidth: 36, data: data.values }],
    };
  }

  var BUILDERS = { weekly: weekly, bar: bar };

  function drawCharts(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var data = readJson(el.dataset.chartSource);
      var build = BUILDERS[el.dataset.chart];
      if (!data || !build) return;
      var chart = window.echarts.init(el);
      chart.setOption(build(el, data));
      el.dataset.drawn = "1";
      charts.push(chart);
    });
  }

  window.addEventListener("load", function () { drawCharts(document); });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); });

  // A <details> dropdown stays open until the user clicks elsewhere or presses Escape.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.dropdown[open]").forEach(function (d) {
      if (!d.contains(event.target)) d.removeAttribute("open");
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.dropdown[open]").forEach(function (d) { d.removeAttribute("open"); });
  });
})();
