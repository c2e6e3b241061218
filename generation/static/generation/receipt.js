// The receipt page follows its generation through the API: progress, then the player and
// downloads, then training-time attribution (top contributors as a chart) and the audit.
"use strict";

(function () {
  const { api, ApiError, el } = window.platformApi;
  const $ = (selector) => document.querySelector(selector);
  const card = $("#status-card");
  const uid = card.dataset.generation;
  const SVG = "http://www.w3.org/2000/svg";
  const TOP = 10;

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const label = { queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed" };

  function showGeneration(detail) {
    $("#status-text").textContent = label[detail.status] || detail.status;
    card.dataset.status = detail.status;
    const progress = $("#progress");
    progress.max = Math.max(detail.progress.total, 1);
    progress.value = detail.progress.step;
    $("#progress-text").textContent = detail.progress.total
      ? `step ${detail.progress.step} of ${detail.progress.total}`
      : "waiting for a worker";
    if (detail.failure_reason) {
      $("#failure").textContent = detail.failure_reason;
      $("#failure").hidden = false;
    }
    if (detail.status === "succeeded" && $("#result").hidden) {
      $("#player").src = detail.audio_url;
      $("#download-audio").href = detail.audio_url;
      $("#download-provenance").href = detail.provenance_url;
      $("#result").hidden = false;
    }
    showAudit(detail.similarity_audit);
  }

  // Horizontal bars, one per contributor, widths by share of the training pool.
  function contributorChart(rows) {
    const barHeight = 22;
    const width = 640;
    const labelWidth = 260;
    const height = rows.length * barHeight + 8;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("class", "chart");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `Top ${rows.length} training recordings by attribution share`);
    const max = Math.max(...rows.map((r) => r.share_topk), 1e-9);
    rows.forEach((row, i) => {
      const y = 4 + i * barHeight;
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", labelWidth - 6);
      text.setAttribute("y", y + 15);
      text.setAttribute("text-anchor", "end");
      text.setAttribute("font-size", "12");
      text.textContent = row.title.length > 38 ? `${row.title.slice(0, 37)}…` : row.title;
      const bar = document.createElementNS(SVG, "rect");
      bar.setAttribute("x", labelWidth);
      bar.setAttribute("y", y + 3);
      bar.setAttribute("height", barHeight - 6);
      bar.setAttribute("width", Math.max(1, ((width - labelWidth - 60) * row.share_topk) / max));
      bar.setAttribute("fill", "var(--tda)");
      const value = document.createElementNS(SVG, "text");
      value.setAttribute("x", labelWidth + ((width - labelWidth - 60) * row.share_topk) / max + 4);
      value.setAttribute("y", y + 15);
      value.setAttribute("font-size", "12");
      value.textContent = `${(100 * row.share_topk).toFixed(1)}%`;
      svg.append(text, bar, value);
    });
    return svg;
  }

  function contributorTable(rows) {
    return el("table", { id: "tda-table" },
      el("caption", { class: "muted" }, "Unlearning scores: how much the training recording's loss rose when the output was unlearned"),
      el("thead", {}, el("tr", {}, el("th", {}, "Training recording"), el("th", { class: "num" }, "Score"), el("th", { class: "num" }, "Pool share"))),
      el("tbody", {}, rows.map((r) => el("tr", {},
        el("td", {}, r.title, el("span", { class: "muted" }, ` — ${r.artist}`)),
        el("td", { class: "num" }, r.score.toExponential(2)),
        el("td", { class: "num" }, `${(100 * r.share_topk).toFixed(1)}%`)))));
  }

  async function followTrainingAttribution() {
    const status = $("#tda-status");
    for (;;) {
      let job;
      try {
        job = await api("GET", `/api/attribution/training/${uid}/`);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          status.textContent = "Pending: not computed yet.";
          await sleep(5000);
          continue;
        }
        status.textContent = error.message;
        return;
      }
      if (job.status === "done") {
        // paid recordings first (a high score within its noise is not paid), then by score
        const rows = [...job.contributors]
          .sort((a, b) => b.share_topk - a.share_topk || b.score - a.score)
          .slice(0, TOP);
        const paid = job.contributors.filter((r) => r.share_topk > 0).length;
        status.textContent = job.payout_share_kind === "unattributed"
          ? `Computed for ${job.contributors.length} training recordings; no score cleared its noise, so the training pool stays unattributed (pending) for now.`
          : `Computed for ${job.contributors.length} training recordings; ${paid} of them share the training pool.`;
        $("#tda-chart").replaceChildren(contributorChart(rows), contributorTable(rows));
        return;
      }
      if (job.status === "failed") {
        status.textContent = `Training-time attribution failed: ${job.failure_reason}`;
        status.classList.add("error");
        return;
      }
      const p = job.progress;
      status.textContent = `Pending: ${job.stage || job.status}${p.total ? ` (${p.done} of ${p.total} training recordings scored)` : ""}.`;
      await sleep(3000);
    }
  }

  function showAudit(audit) {
    const status = $("#audit-status");
    if (!audit) {
      status.textContent = "Pending: the output's clips are compared with the catalogue after generation.";
      return;
    }
    if (audit.status === "failed") {
      status.textContent = `The audit failed: ${audit.failure_reason}`;
      return;
    }
    if (audit.status !== "done") {
      status.textContent = `Pending: ${audit.stage || audit.status}.`;
      return;
    }
    const threshold = `${audit.threshold_name} = ${Number(audit.threshold_value).toFixed(3)}`;
    status.textContent = audit.flagged
      ? `Flagged for review: a recording that was not a reference is at least as similar as the threshold (${threshold}).${audit.payouts_held ? " Its payouts are held until staff review it." : ""}`
      : `No recording outside the references reaches the threshold (${threshold}), over ${audit.output_clip_count} clips of ${audit.clip_seconds} s.`;
    status.classList.toggle("error", audit.flagged);
    const seconds = (t) => `${Number(t).toFixed(1)} s`;
    $("#audit-result").replaceChildren(el("table", { id: "audit-table" },
      el("thead", {}, el("tr", {},
        el("th", {}, "Most similar recordings"), el("th", { class: "num" }, "Similarity"),
        el("th", {}, "Best clip pair (output → recording)"), el("th", {}, "Reference"), el("th", {}, "Flag"))),
      el("tbody", {}, audit.matches.map((m) => el("tr", { class: m.flagged ? "flag" : null },
        el("td", {}, m.title, el("span", { class: "muted" }, ` — ${m.artist}`)),
        el("td", { class: "num" }, Number(m.similarity).toFixed(3)),
        el("td", {}, `${seconds(m.output_start_seconds)} → ${seconds(m.recording_start_seconds)}`),
        el("td", {}, m.is_reference ? "yes" : "no"),
        el("td", {}, m.flagged ? el("span", { class: "badge bad" }, "flagged") : ""))))));
  }

  async function followGeneration() {
    for (;;) {
      let detail;
      try {
        detail = await api("GET", `/api/generations/${uid}/`);
      } catch (error) {
        $("#progress-text").textContent = error.message;
        return;
      }
      showGeneration(detail);
      if (detail.status === "failed") return;
      if (detail.status === "succeeded") {
        followTrainingAttribution();
        followAudit(detail);
        return;
      }
      await sleep(1000);
    }
  }

  async function followAudit(detail) {
    let audit = detail.similarity_audit;
    while (!audit || !["done", "failed"].includes(audit.status)) {
      await sleep(4000);
      try {
        audit = (await api("GET", `/api/generations/${uid}/`)).similarity_audit;
      } catch (_) {
        return;
      }
      showAudit(audit);
    }
  }

  followGeneration();
})();
