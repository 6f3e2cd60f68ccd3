// Fission campaign page: participants joined and invites by status per day (stacked bars), from json_script data.
(function () {
  "use strict";
  function draw() {
    var el = document.querySelector('[data-chart="fission"]');
    var source = el && document.getElementById(el.dataset.chartSource);
    if (!el || !source || !window.echarts || el.dataset.drawn) return;
    var data = JSON.parse(source.textContent);
    var d = el.dataset;
    var chart = window.echarts.init(el);
    chart.setOption({
      color: ["#1f6feb", "#f0a020", "#18a058", "#d03050"],
      tooltip: { trigger: "axis" },
      legend: { top: 0, right: 0 },
      grid: { left: 40, right: 16, top: 34, bottom: 28 },
      xAxis: { type: "category", data: data.days },
      yAxis: { type: "value", minInterval: 1 },
      series: [
        { name: d.labelParticipants, type: "line", data: data.participants },
        { name: d.labelPending, type: "bar", stack: "invites", data: data.pending },
        { name: d.labelCounted, type: "bar", stack: "invites", data: data.counted },
        { name: d.labelRejected, type: "bar", stack: "invites", data: data.rejected },
      ],
    });
    el.dataset.drawn = "1";
    window.addEventListener("resize", function () { chart.resize(); });
  }
  window.addEventListener("load", draw);
})();
