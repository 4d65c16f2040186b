// The SLA dashboard's charts (templates/sla/dashboard.html). The figures come from the page's
// <script type="application/json" id="dashboard-data"> block (json_script), never from inline script, so the page
// works under a strict Content-Security-Policy. Changing a filter reloads the page with the filters in the URL.
(function () {
  "use strict";

  var COLOURS = {
    brand: "#0b57d0",
    ok: "#1a7f37",
    danger: "#cf222e",
    warning: "#bf8700",
    muted: "#6e7781",
    states: ["#54aeff", "#c297ff", "#4ac26b", "#fb8f44"]
  };

  function readData() {
    var node = document.getElementById("dashboard-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  function canvas(name) {
    return document.querySelector('canvas[data-chart="' + name + '"]');
  }

  function baseOptions(extra) {
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { position: "bottom" } }
    };
    return Object.assign(options, extra || {});
  }

  function draw(name, config) {
    var node = canvas(name);
    if (!node) return null;
    var chart = new window.Chart(node, config);
    node.dataset.rendered = "true";
    return chart;
  }

  function drawAll(data) {
    var charts = {};
    charts.trend = draw("trend", {
      type: "line",
      data: {
        labels: data.trend.labels,
        datasets: [
          { label: "First response", data: data.trend.first_response, borderColor: COLOURS.brand,
            backgroundColor: COLOURS.brand, spanGaps: false },
          { label: "Resolution", data: data.trend.resolution, borderColor: COLOURS.ok,
            backgroundColor: COLOURS.ok, spanGaps: false }
        ]
      },
      options: baseOptions({ scales: { y: { min: 0, max: 100 } } })
    });
    charts.flow = draw("flow", {
      type: "bar",
      data: {
        labels: data.flow.labels,
        datasets: [
          { label: "Created", data: data.flow.created, backgroundColor: COLOURS.brand },
          { label: "Resolved", data: data.flow.resolved, backgroundColor: COLOURS.ok }
        ]
      },
      options: baseOptions({ scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } })
    });
    ["breaches_by_team", "breaches_by_category"].forEach(function (name) {
      charts[name] = draw(name, {
        type: "bar",
        data: {
          labels: data[name].labels,
          datasets: [{ label: "Breaches", data: data[name].values, backgroundColor: COLOURS.danger }]
        },
        options: baseOptions({
          indexAxis: "y",
          plugins: { legend: { display: false } },
          scales: { x: { beginAtZero: true, ticks: { precision: 0 } } }
        })
      });
    });
    charts.backlog = draw("backlog", {
      type: "bar",
      data: {
        labels: data.backlog.labels,
        datasets: data.backlog.datasets.map(function (set, index) {
          return { label: set.label, data: set.values, backgroundColor: COLOURS.states[index % COLOURS.states.length] };
        })
      },
      options: baseOptions({
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } }
      })
    });
    return charts;
  }

  function wireFilters() {
    var form = document.querySelector("[data-dashboard-filters]");
    if (!form) return;
    var range = form.querySelector('[name="range"]');
    form.addEventListener("change", function (event) {
      var target = event.target;
      // Typing a date picks the custom period; picking a preset clears the dates.
      if (target.name === "from" || target.name === "to") {
        range.value = "custom";
        var from = form.querySelector('[name="from"]').value;
        var to = form.querySelector('[name="to"]').value;
        if (!from || !to) return;
      } else if (target.name === "range" && target.value !== "custom") {
        form.querySelector('[name="from"]').value = "";
        form.querySelector('[name="to"]').value = "";
      } else if (target.name === "range") {
        return;
      }
      // Leave empty fields out of the URL, so a bookmarked view stays short.
      Array.prototype.forEach.call(form.elements, function (element) {
        if (element.name && !element.value) element.disabled = true;
      });
      form.submit();
    });
  }

  function start() {
    wireFilters();
    var data = readData();
    if (!data || !window.Chart) return;
    window.dashboardCharts = drawAll(data);
    document.documentElement.dataset.chartsReady = "true";
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
