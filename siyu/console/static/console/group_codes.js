// Group code pages: joins and leaves per day (ECharts), from a json_script block named by data-chart-source.
(function () {
  "use strict";
  function draw() {
    if (!window.echarts) return;
    document.querySelectorAll("[data-gc-chart]").forEach(function (el) {
      var node = document.getElementById(el.dataset.chartSource);
      if (!node || el.dataset.drawn) return;
      var data = JSON.parse(node.textContent);
      var series = [{ name: el.dataset.labelJoins, type: "bar", barMaxWidth: 18, data: data.joins }];
      if (el.dataset.labelLeaves) series.push({ name: el.dataset.labelLeaves, type: "bar", barMaxWidth: 18, data: data.leaves });
      var chart = window.echarts.init(el);
      chart.setOption({
        color: ["#18a058", "#d03050"],
        tooltip: { trigger: "axis" },
        legend: { top: 0, right: 0 },
        grid: { left: 40, right: 16, top: 30, bottom: 28 },
        xAxis: { type: "category", data: data.days },
        yAxis: { type: "value", minInterval: 1 },
        series: series,
      });
      el.dataset.drawn = "1";
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }
  window.addEventListener("load", draw);
})();
