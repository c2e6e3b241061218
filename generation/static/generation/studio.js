// The studio page: find references (prompt, categories, search with autocomplete, browse),
// keep a selection with level/role/weight, verify it, swap in permitted alternatives, submit.
"use strict";

(function () {
  const { api, ApiError, el } = window.platformApi;
  const $ = (selector, root = document) => root.querySelector(selector);
  const studio = $("#studio");
  const maxReferences = Number(studio.dataset.maxReferences);
  const levelHelp = Object.fromEntries(JSON.parse($("#studio-levels").textContent).map(([v, , h]) => [v, h]));
  const LEVEL_USE = { song: "song_inference", parameter: "parameter_inference", audio: "audio_inference", temporal: "audio_inference" };
  const selection = []; // {recording, title, artist, node}

  const distribution = () => $("input[name=distribution]:checked").value;
  const scopeLevel = () => $("#scope-level").value;
  const audioUrl = (id) => `/api/catalogue/recordings/${id}/audio/`;

  // --- tabs (arrow keys move between them, as the ARIA tabs pattern says) -------------------
  const tabs = [...document.querySelectorAll("[role=tab]")];
  function selectTab(tab) {
    tabs.forEach((t) => {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    });
    tab.focus();
    if (tab.id === "tab-browse" && !$("#browse-nodes").children.length) browse([]);
  }
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) selectTab(tabs[(i + step + tabs.length) % tabs.length]);
    });
  });

  // --- results ----------------------------------------------------------------------------
  function showStatus(text, isError = false) {
    const status = $("#results-status");
    status.textContent = text;
    status.classList.toggle("error", isError);
  }

  function resultItem(recording, detail) {
    const added = selection.some((s) => s.recording === recording.id);
    return el(
      "li",
      { class: "card result", "data-recording": recording.id },
      el("div", { class: "row" },
        el("strong", {}, recording.title),
        el("span", { class: "muted" }, recording.artist),
        detail ? el("span", { class: "badge" }, detail) : null,
        el("button", {
          type: "button", class: "secondary add", disabled: added,
          "aria-label": `Add ${recording.title} to the selection`,
          onclick: (event) => { addReference(recording); event.target.disabled = true; },
        }, added ? "Added" : "Add")),
      el("audio", { controls: true, preload: "none", src: audioUrl(recording.id), "aria-label": `Preview of ${recording.title}` }),
    );
  }

  function showResults(recordings, describe) {
    const list = $("#results");
    list.replaceChildren(...recordings.map((r) => resultItem(r, describe(r))));
    showStatus(recordings.length ? `${recordings.length} recordings you may use at this level.` : "No permitted recordings matched.");
  }

  const fromHit = (hit) => ({ id: hit.recording.id, title: hit.recording.title, artist: hit.recording.artist.name, score: hit.score });

  async function run(task) {
    showStatus("Searching…");
    try {
      await task();
    } catch (error) {
      showStatus(error instanceof ApiError ? error.describe() : String(error), true);
    }
  }

  $("#panel-prompt").addEventListener("submit", (event) => {
    event.preventDefault();
    run(async () => {
      const data = await api("POST", "/api/retrieval/text/", {
        prompt: $("#prompt-text").value, level: scopeLevel(), distribution: distribution(), k: 10,
      });
      showResults(data.results.map(fromHit), (r) => `similarity ${r.score.toFixed(2)}`);
    });
  });

  $("#panel-categories").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    run(async () => {
      const body = { level: scopeLevel(), distribution: distribution(), k: 10, genre: form.get("genre"), situation: form.get("situation"), function: form.get("function") };
      ["moods", "instruments"].forEach((name) => { body[name] = form.getAll(name); });
      const data = await api("POST", "/api/retrieval/categories/", body);
      showResults(data.results.map(fromHit), (r) => `similarity ${r.score.toFixed(2)}`);
    });
  });

  // --- search with autocomplete -------------------------------------------------------------
  const searchInput = $("#search-text");
  const suggestions = $("#search-suggestions");
  let suggestTimer = null;
  let active = -1;

  function closeSuggestions() {
    suggestions.hidden = true;
    searchInput.setAttribute("aria-expanded", "false");
    searchInput.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function chooseSuggestion(text) {
    searchInput.value = text;
    closeSuggestions();
    $("#panel-search").requestSubmit();
  }

  searchInput.addEventListener("input", () => {
    clearTimeout(suggestTimer);
    const q = searchInput.value.trim();
    if (q.length < 2) return closeSuggestions();
    suggestTimer = setTimeout(async () => {
      try {
        const data = await api("GET", `/api/catalogue/search/autocomplete/?q=${encodeURIComponent(q)}&limit=8&use=${LEVEL_USE[scopeLevel()]}`);
        const items = data.suggestions || [];
        suggestions.replaceChildren(...items.map((s, i) => el("li", {
          id: `suggestion-${i}`, role: "option", "aria-selected": "false",
          onmousedown: (event) => { event.preventDefault(); chooseSuggestion(s.text); },
        }, s.text, s.detail ? el("span", { class: "muted" }, ` · ${s.detail}`) : null, el("span", { class: "muted" }, ` (${s.kind})`))));
        suggestions.hidden = !items.length;
        searchInput.setAttribute("aria-expanded", String(items.length > 0));
        active = -1;
      } catch (_) {
        closeSuggestions();
      }
    }, 150);
  });

  searchInput.addEventListener("keydown", (event) => {
    const options = [...suggestions.children];
    if (suggestions.hidden || !options.length) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      active = (active + (event.key === "ArrowDown" ? 1 : -1) + options.length) % options.length;
      options.forEach((o, i) => o.setAttribute("aria-selected", String(i === active)));
      searchInput.setAttribute("aria-activedescendant", options[active].id);
    } else if (event.key === "Enter" && active >= 0) {
      event.preventDefault();
      chooseSuggestion(options[active].firstChild.textContent);
    } else if (event.key === "Escape") closeSuggestions();
  });
  searchInput.addEventListener("blur", () => setTimeout(closeSuggestions, 100));

  $("#panel-search").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = searchInput.value.trim();
    if (!q) return;
    run(async () => {
      const use = LEVEL_USE[scopeLevel()];
      const data = await api("GET", `/api/catalogue/search/?q=${encodeURIComponent(q)}&limit=20&use=${use}`);
      showResults(data.results.map((r) => ({ id: r.id, title: r.title, artist: r.artist.name })), () => null);
    });
  });

  // --- browse the hierarchy ---------------------------------------------------------------
  async function browse(path) {
    const kind = $("#browse-kind").value;
    const params = new URLSearchParams();
    path.forEach((p) => params.append("path", p.key));
    params.set("use", LEVEL_USE[scopeLevel()]);
    try {
      const page = await api("GET", `/api/catalogue/browse/${kind}/?${params}`);
      const crumbs = [el("button", { type: "button", class: "link", onclick: () => browse([]) }, `All (${kind})`)];
      page.path.forEach((crumb, i) => crumbs.push(" › ", el("button", { type: "button", class: "link", onclick: () => browse(path.slice(0, i + 1)) }, crumb.label)));
      $("#browse-path").replaceChildren(...crumbs);
      if (page.level === "recording") {
        $("#browse-nodes").replaceChildren();
        showResults(page.recordings.map((r) => ({ id: r.id, title: r.title, artist: r.artist.name })), () => null);
      } else {
        $("#browse-nodes").replaceChildren(...page.nodes.map((node) => el("li", {},
          el("button", { type: "button", class: "link", onclick: () => browse([...path, node]) }, node.label),
          el("span", { class: "muted" }, ` ${node.count} recordings`))));
      }
    } catch (error) {
      showStatus(error instanceof ApiError ? error.describe() : String(error), true);
    }
  }
  $("#browse-kind").addEventListener("change", () => browse([]));

  // --- the selection ----------------------------------------------------------------------
  function refreshSelection() {
    $("#selection-empty").hidden = selection.length > 0;
    document.querySelectorAll("#results .result").forEach((item) => {
      const button = $("button.add", item);
      const added = selection.some((s) => s.recording === Number(item.dataset.recording));
      button.disabled = added || selection.length >= maxReferences;
      button.textContent = added ? "Added" : "Add";
    });
  }

  function addReference(recording, at = selection.length) {
    if (selection.some((s) => s.recording === recording.id) || selection.length >= maxReferences) return;
    const node = $("#selection-item").content.firstElementChild.cloneNode(true);
    const entry = { recording: recording.id, title: recording.title, artist: recording.artist, node };
    $(".ref-title", node).textContent = recording.title;
    $(".ref-artist", node).textContent = recording.artist;
    node.dataset.recording = recording.id;
    node.setAttribute("aria-label", `Reference ${recording.title}`);
    const level = $(".ref-level", node);
    level.value = scopeLevel();
    const syncLevel = () => {
      $(".ref-level-help", node).textContent = levelHelp[level.value];
      $(".ref-segment", node).hidden = level.value !== "temporal";
      const role = $(".ref-role", node);
      if (level.value === "parameter" && role.value === "style") role.value = "mood";
    };
    level.addEventListener("change", syncLevel);
    syncLevel();
    $(".ref-remove", node).addEventListener("click", () => removeReference(entry));
    const list = $("#selection");
    list.insertBefore(node, list.children[at] || null);
    selection.splice(at, 0, entry);
    refreshSelection();
    refreshQuote();
  }

  function removeReference(entry) {
    const index = selection.indexOf(entry);
    if (index >= 0) selection.splice(index, 1);
    entry.node.remove();
    refreshSelection();
    refreshQuote();
    return index;
  }

  function referencesPayload() {
    return selection.map((entry) => {
      const node = entry.node;
      const ref = {
        recording: entry.recording,
        level: $(".ref-level", node).value,
        role: $(".ref-role", node).value,
        weight: Number($(".ref-weight", node).value),
      };
      if (ref.level === "temporal" && $(".ref-segment-start", node).value !== "") {
        ref.segment_start = Number($(".ref-segment-start", node).value);
        ref.segment_end = Number($(".ref-segment-end", node).value);
      }
      return ref;
    });
  }

  // --- verification and alternatives -------------------------------------------------------
  function swapIn(entry, alternative) {
    const level = $(".ref-level", entry.node).value;
    const role = $(".ref-role", entry.node).value;
    const weight = $(".ref-weight", entry.node).value;
    const at = removeReference(entry);
    addReference({ id: alternative.recording, title: alternative.title, artist: alternative.artist }, at);
    const node = selection[at].node;
    $(".ref-level", node).value = level;
    $(".ref-role", node).value = role;
    $(".ref-weight", node).value = weight;
    $(".ref-level", node).dispatchEvent(new Event("change"));
    $("#verification").replaceChildren(el("p", { class: "muted" }, `Swapped in ${alternative.title}; check again.`));
  }

  function showVerdicts(verification) {
    verification.references.forEach((verdict) => {
      const entry = selection[verdict.position];
      if (!entry) return;
      const box = $(".ref-verdict", entry.node);
      if (verdict.permitted) {
        box.replaceChildren(el("span", { class: "badge ok" }, "Permitted"));
        return;
      }
      box.replaceChildren(
        el("p", {}, el("span", { class: "badge bad" }, "Refused")),
        el("ul", { class: "reasons" }, verdict.reasons.map((r) => el("li", { class: "error" }, r))),
        verdict.alternatives.length
          ? el("div", {}, el("p", { class: "muted" }, "Permitted alternatives:"),
            el("ul", { class: "alternatives" }, verdict.alternatives.map((alt) => el("li", {},
              `${alt.title} — ${alt.artist} (similarity ${Number(alt.score).toFixed(2)}) `,
              el("button", { type: "button", class: "secondary", "aria-label": `Swap in ${alt.title}`, onclick: () => swapIn(entry, alt) }, "Swap in")))))
          : el("p", { class: "muted" }, "No permitted alternative was found."),
      );
    });
    const ok = verification.permitted;
    $("#verification").replaceChildren(el("p", { class: ok ? "badge ok" : "badge bad", role: "status" },
      ok ? "All references are permitted for this distribution." : "Some references are refused: swap them or change the level or distribution."));
  }

  function needsReferences() {
    if (selection.length) return false;
    $("#verification").replaceChildren(el("p", { class: "error", role: "alert" }, "Add at least one reference first."));
    return true;
  }

  async function verify() {
    if (needsReferences()) return null;
    try {
      const verification = await api("POST", "/api/generations/verify/", { references: referencesPayload(), distribution: distribution() });
      showVerdicts(verification);
      return verification;
    } catch (error) {
      $("#verification").replaceChildren(el("p", { class: "error", role: "alert" }, error instanceof ApiError ? error.describe() : String(error)));
      return null;
    }
  }
  $("#verify-button").addEventListener("click", verify);

  // --- the price, next to Generate (the quote equals the charge) ------------------------------
  let quoteTimer = null;
  let quoteSerial = 0;
  function refreshQuote() {
    clearTimeout(quoteTimer);
    quoteTimer = setTimeout(showQuote, 250);
  }

  async function showQuote() {
    const box = $("#quote");
    const details = $("#quote-details");
    const serial = ++quoteSerial;
    if (!selection.length) {
      box.textContent = "Price: add a reference to see it.";
      details.hidden = true;
      return;
    }
    try {
      const quote = await api("POST", "/api/generations/quote/", { references: referencesPayload(), distribution: distribution() });
      if (serial !== quoteSerial) return; // a newer selection is being priced
      const why = quote.floor ? ` (a rights holder's minimum for this use; the tier is ${quote.tier})` : "";
      box.textContent = `Price: ${quote.amount} ${quote.currency}${why}`;
      box.dataset.amountMinor = quote.amount_minor;
      $("tbody", details).replaceChildren(...quote.holders.map((h) => el("tr", {},
        el("td", {}, h.name), el("td", {}, h.side === "publishing" ? "composition" : "recording"),
        el("td", { class: "num" }, h.amount))));
      details.hidden = !quote.holders.length;
    } catch (error) {
      if (serial !== quoteSerial) return;
      box.textContent = `No price yet: ${error instanceof ApiError ? error.describe() : String(error)}`;
      delete box.dataset.amountMinor;
      details.hidden = true;
    }
  }
  $("#selection").addEventListener("change", refreshQuote);

  // --- submit -----------------------------------------------------------------------------
  $("#generate-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (needsReferences()) return;
    const button = $("#generate-button");
    button.disabled = true;
    const form = new FormData();
    form.set("references", JSON.stringify(referencesPayload()));
    form.set("distribution", distribution());
    const upload = $("#gen-upload").files[0];
    if (upload) form.set("upload", upload);
    else form.set("seconds", $("#gen-seconds").value);
    if ($("#gen-prompt").value) form.set("prompt", $("#gen-prompt").value);
    if (upload && $("#gen-segment-start").value !== "") {
      form.set("segment_start", $("#gen-segment-start").value);
      form.set("segment_end", $("#gen-segment-end").value);
    }
    form.set("key", crypto.randomUUID ? crypto.randomUUID() : String(Date.now()));
    $("#verification").replaceChildren(el("p", { class: "muted", role: "status" }, "Verifying and submitting…"));
    try {
      const generation = await api("POST", "/api/generations/", form);
      window.location.assign(`/studio/generations/${generation.id}/`);
    } catch (error) {
      button.disabled = false;
      if (error.code === "references_refused") {
        // The refusal carries the same per-reference verdicts as a check.
        await verify();
      }
      $("#verification").prepend(el("p", { class: "error", role: "alert" }, error instanceof ApiError ? error.describe() : String(error)));
    }
  });

  // Changing the scope or distribution makes old verdicts stale.
  document.querySelectorAll("input[name=distribution]").forEach((radio) => radio.addEventListener("change", () => {
    document.querySelectorAll(".ref-verdict").forEach((box) => box.replaceChildren());
    $("#verification").replaceChildren();
    refreshQuote();
  }));
})();
