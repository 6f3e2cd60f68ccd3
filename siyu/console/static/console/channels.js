// siyu console, live code pages: the adds / deletes / net adds per day chart (data from a json_script block).
(function () {
  "use strict";
  function draw() {
    if (!window.echarts) return;
    document.querySelectorAll("[data-code-chart]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var node = document.getElementById(el.dataset.codeChart);
      if (!node) return;
      var data = JSON.parse(node.textContent);
      var chart = window.echarts.init(el);
      chart.setOption({
        color: ["#18a058", "#d03050", "#1f6feb"],
        tooltip: { trigger: "axis" },
        legend: { top: 0, right: 0 },
        grid: { left: 40, right: 16, top: 34, bottom: 28 },
        xAxis: { type: "category", data: data.days },
        yAxis: { type: "value", minInterval: 1 },
        series: [
          { name: el.dataset.labelAdds, type: "bar", barMaxWidth: 18, data: data.adds },
          { name: el.dataset.labelDeletes, type: "bar", barMaxWidth: 18, data: data.deletes },
          { name: el.dataset.labelNet, type: "line", smooth: true, showSymbol: false, data: data.net },
        ],
      });
      el.dataset.drawn = "1";
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }
  window.addEventListener("load", draw);
})();
