/* siyu console: the store-code pages (门店活码): the store scatter chart and the CSV upload's progress. */
(function () {
  "use strict";

  function drawMap() {
    var el = document.getElementById("store-map");
    if (!el || !window.echarts) { return; }
    var points = JSON.parse(document.getElementById(el.dataset.chartSource).textContent);
    var chart = window.echarts.init(el);
    // Plain longitude/latitude axes, no map tiles: the console works offline and the shape of the network shows.
    chart.setOption({
      grid: { left: 56, right: 16, top: 16, bottom: 40 },
      tooltip: { formatter: function (p) { return p.data[3] + " (" + p.data[2] + ")<br>" + p.data[1] + ", " + p.data[0]; } },
      xAxis: { type: "value", scale: true, name: el.dataset.labelLng, nameLocation: "middle", nameGap: 26 },
      yAxis: { type: "value", scale: true, name: el.dataset.labelLat, nameLocation: "middle", nameGap: 40 },
      dataZoom: [{ type: "inside", xAxisIndex: 0 }, { type: "inside", yAxisIndex: 0 }],
      series: [{ type: "scatter", symbolSize: 7, data: points, large: points.length > 2000 }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
    el.dataset.drawn = String(points.length);
  }

  // Upload progress of the CSV import (htmx reports the XHR's upload events), then "checking" while the server
  // validates and saves the rows.
  document.addEventListener("htmx:xhr:progress", function (event) {
    var bar = document.getElementById("import-bar");
    if (!bar || !event.detail.lengthComputable) { return; }
    bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
    if (bar.value >= 100) {
      document.getElementById("import-phase").hidden = true;
      document.getElementById("import-checking").hidden = false;
      bar.removeAttribute("value");  // indeterminate while the server works
    }
  });

  document.addEventListener("htmx:beforeRequest", function () {
    var bar = document.getElementById("import-bar");
    if (!bar) { return; }
    bar.value = 0;
    document.getElementById("import-phase").hidden = false;
    document.getElementById("import-checking").hidden = true;
  });

  window.addEventListener("load", drawMap);
})();
