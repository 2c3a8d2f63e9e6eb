// loadgen: puts the live charts under the loadgen tab's table in Locust's web UI.
// Locust's extended tabs draw a table only; the charts are a page of their own in a frame, added
// while the tab is shown and removed when another tab is.
(function () {
  const FRAME_ID = "loadgen-charts";

  function onLoadgenTab() {
    return new URLSearchParams(window.location.search).get("tab") === "loadgen";
  }

  function loadgenTable() {
    return Array.from(document.querySelectorAll("table")).find(
      (table) => /Metric/.test(table.innerText) && /TTFT \(ms\)/.test(table.innerText),
    );
  }

  function sync() {
    const frame = document.getElementById(FRAME_ID);
    if (!onLoadgenTab()) {
      if (frame) frame.remove();
      return;
    }
    const table = loadgenTable();
    if (frame || !table) return;
    const anchor = table.closest(".MuiTableContainer-root, .MuiPaper-root") || table;
    const charts = document.createElement("iframe");
    charts.id = FRAME_ID;
    charts.title = "loadgen live charts";
    charts.src = "./loadgen/charts";
    charts.style.cssText = "width:100%;height:1500px;border:0;margin-top:16px;display:block";
    anchor.after(charts);
  }

  new MutationObserver(sync).observe(document.documentElement, { childList: true, subtree: true });
  window.setInterval(sync, 1000); // the tab is in the URL, which changes without a DOM change
})();
