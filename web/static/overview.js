// Charts of the overview page. Data comes from the page itself (a JSON script element),
// so the page makes no request but for this file and the vendored Chart.js.
"use strict";
(function () {
  const el = document.getElementById("overview-data");
  if (!el || typeof Chart === "undefined") return;
  const data = JSON.parse(el.textContent);
  const palette = ["#2456c7", "#e07b00", "#1a7f37", "#b42318", "#7a3fc2", "#0f7c8c", "#8c6d1f", "#c2185b"];
  Chart.defaults.animation = false;
  Chart.defaults.font.family = "system-ui, sans-serif";

  new Chart(document.getElementById("chart-labels"), {
    type: "bar",
    data: {
      labels: data.per_bucket.map((b) => b.bucket.replace("T", " ").replace(":00:00Z", ":00")),
      datasets: data.labels.map((label, i) => ({
        label: label,
        data: data.per_bucket.map((b) => b.counts[label] || 0),
        backgroundColor: palette[i % palette.length],
      })),
    },
    options: { responsive: true, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  });

  new Chart(document.getElementById("chart-runs"), {
    type: "bar",
    data: {
      labels: data.runs.map((r) => r.run_id.slice(0, 12)),
      datasets: [{ label: "docs/s", data: data.runs.map((r) => r.docs_per_s || 0), backgroundColor: "#2456c7" }],
    },
    options: { responsive: true, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
  });

  const r = data.review;
  new Chart(document.getElementById("chart-review"), {
    type: "doughnut",
    data: {
      labels: ["not flagged", "flagged, not reviewed", "flagged, reviewed"],
      datasets: [{
        data: [r.results - r.flagged, Math.max(r.flagged - r.reviewed, 0), Math.min(r.reviewed, r.flagged)],
        backgroundColor: ["#c9d3e3", "#e0a100", "#1a7f37"],
      }],
    },
    options: { responsive: true },
  });

  new Chart(document.getElementById("chart-dead"), {
    type: "bar",
    data: {
      labels: data.dead_letters.map((d) => d.reason),
      datasets: [{ label: "dead letters", data: data.dead_letters.map((d) => d.count), backgroundColor: "#b42318" }],
    },
    options: { indexAxis: "y", responsive: true, plugins: { legend: { display: false } } },
  });
})();
