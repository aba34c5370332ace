// The Separate Stems form and dialog, and the library's batch: progressive
// enhancement over the plain form (_separate_form.html), which works alone.
// Stem choices follow the engine and the model, two stems (karaoke) replace
// the check boxes, each model says whether it is on this machine, and for
// LALAL.AI the cost (the engine's own estimate) is shown against the minutes
// left before anything is submitted. Uses app.js's API helper.
"use strict";

(function () {
  const api = (...args) => window.soundforgeApi(...args);

  // ---- batch: select tracks, separate them with one set of options -------

  function initBatch() {
    const bar = document.querySelector("[data-batch-bar]");
    if (!bar) return;
    const boxes = () => Array.from(document.querySelectorAll("[data-select-track]"));
    const update = () => {
      const n = boxes().filter((box) => box.checked).length;
      bar.hidden = n === 0;
      bar.querySelector("[data-batch-count]").textContent = `${n} selected`;
      boxes().forEach((box) => box.closest("[data-track-card]").classList.toggle("is-selected", box.checked));
    };
    document.addEventListener("change", (event) => {
      if (event.target.matches && event.target.matches("[data-select-track]")) update();
    });
    bar.querySelector("[data-batch-clear]").addEventListener("click", () => {
      boxes().forEach((box) => { box.checked = false; });
      update();
    });
    update();
  }

  // ---- separate form -----------------------------------------------------

  function initSeparateForms() {
    document.querySelectorAll("form[data-separate-form]").forEach(setupSeparateForm);
    const dialog = document.getElementById("separate-dialog");
    if (!dialog) return;
    const form = dialog.querySelector("form");
    const open = (action, title, trackId, duration, batchIds) => {
      form.action = action;
      form.dataset.trackId = trackId || "";
      form.dataset.duration = duration || "";
      form.dataset.submitting = "";
      const holder = form.querySelector("[data-batch-ids]");
      holder.innerHTML = "";
      (batchIds || []).forEach((id) => {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = "track_ids";
        input.value = id;
        holder.appendChild(input);
      });
      dialog.querySelector("[data-track-title]").textContent = title || "";
      const submit = form.querySelector('[type="submit"]');
      submit.disabled = false;
      submit.textContent = submit.dataset.label || submit.textContent;
      dialog.showModal();
      form.dispatchEvent(new CustomEvent("soundforge:form-opened"));
    };
    document.querySelectorAll("[data-open-separate]").forEach((link) => {
      link.addEventListener("click", (event) => {
        event.preventDefault();
        open(link.dataset.action, link.dataset.trackTitle, link.dataset.trackId,
             link.dataset.duration);
      });
    });
    // Batch: the same dialog, once for every selected track.
    const batchButton = document.querySelector("[data-batch-separate]");
    if (batchButton) {
      batchButton.addEventListener("click", () => {
        const ids = Array.from(document.querySelectorAll("[data-select-track]:checked")).map((box) => box.value);
        if (!ids.length) return;
        open(batchButton.dataset.action, `${ids.length} selected track${ids.length === 1 ? "" : "s"}`,
             "", "", ids);
      });
    }
    dialog.querySelectorAll("[data-close-dialog]").forEach((btn) =>
      btn.addEventListener("click", () => dialog.close()));
  }

  function setupSeparateForm(form) {
    const models = JSON.parse(form.dataset.models || "{}");
    const lalalStems = JSON.parse(form.dataset.lalalaiStems || "[]");
    const stemBox = form.querySelector("[data-stem-choices]");
    const modelSelect = form.querySelector('select[name="model"]');
    const twoBox = form.querySelector("[data-two-stems]");
    const twoSelect = form.querySelector("[data-two-select]");
    const modelNote = form.querySelector("[data-model-note]");
    const ensembleNote = form.querySelector("[data-ensemble-note]");
    const costEl = form.querySelector("[data-cost]");
    const submit = form.querySelector('[type="submit"]');
    const table = form.closest("dialog, .panel, main").querySelector("table.compare");
    let selectedStems = new Set(JSON.parse(form.dataset.selectedStems || "[]"));

    const engine = () => {
      const checked = form.querySelector('input[name="engine"]:checked');
      return checked ? checked.value : "local";
    };
    const twoMode = () => {
      const checked = form.querySelector('input[name="split_mode"]:checked');
      return engine() === "local" && checked && checked.value === "two";
    };

    // `reset`: the stem choices start again from the model's (or LALAL.AI's)
    // defaults instead of keeping what was ticked for the previous model.
    const renderStems = (reset) => {
      const names = engine() === "lalalai" ? lalalStems : (models[modelSelect.value] || []);
      const before = new Set(Array.from(stemBox.querySelectorAll("input:checked")).map((i) => i.value));
      const keep = reset ? new Set() : (before.size ? before : selectedStems);
      stemBox.innerHTML = "";
      names.forEach((name) => {
        const label = document.createElement("label");
        label.className = "choice";
        const box = document.createElement("input");
        box.type = "checkbox";
        box.name = "stems";
        box.value = name;
        // Local models default to every stem; LALAL.AI charges per stem, so
        // it starts from what the user picked before (or vocals).
        box.checked = keep.size ? keep.has(name) : (engine() === "local" || name === "vocals");
        label.appendChild(box);
        label.appendChild(document.createTextNode(" " + name.replace(/_/g, " ")));
        stemBox.appendChild(label);
      });
      if (!stemBox.querySelector("input:checked") && stemBox.querySelector("input")) {
        stemBox.querySelector("input").checked = engine() === "lalalai";
        if (engine() === "local") stemBox.querySelectorAll("input").forEach((i) => { i.checked = true; });
      }
      if (twoSelect && engine() === "local") {
        const current = twoSelect.value;
        twoSelect.innerHTML = "";
        (models[modelSelect.value] || []).forEach((name) => {
          const option = new Option(name.replace(/_/g, " "), name);
          option.selected = name === current;
          twoSelect.appendChild(option);
        });
      }
    };

    const showMode = () => {
      const two = twoMode();
      stemBox.hidden = two;
      stemBox.querySelectorAll("input").forEach((i) => { i.disabled = two; });
      if (twoBox) {
        twoBox.hidden = !two;
        twoSelect.disabled = !two;
      }
    };

    const showModelState = () => {
      if (!modelNote || !modelSelect) return;
      const option = modelSelect.selectedOptions[0];
      if (!option) return;
      const state = option.dataset.state || "";
      modelNote.textContent = option.dataset.available === "1"
        ? "Ready on this machine."
        : state.includes("download")
          ? `Not on this machine yet: the first separation downloads it (${state.replace("needs a ", "")}).`
          : "Not on this machine: separations with it fail until its files are in the model repository.";
      modelNote.classList.toggle("warn", option.dataset.available !== "1");
      if (ensembleNote) {
        // An ensemble preset says which models it combines, and why.
        ensembleNote.textContent = option.dataset.about || "";
        ensembleNote.hidden = !option.dataset.about;
      }
    };

    // ---- LALAL.AI cost before submitting: duration × stems, against minutes left.
    let remaining = null;
    let estimateRun = 0;
    const trackIds = () => {
      const batch = Array.from(form.querySelectorAll('[data-batch-ids] input[name="track_ids"]')).map((i) => i.value);
      return batch.length ? batch : (form.dataset.trackId ? [form.dataset.trackId] : []);
    };
    const estimate = async () => {
      if (!costEl) return;
      const ids = trackIds();
      submit.disabled = false;
      costEl.className = "cost";
      if (engine() !== "lalalai" || !ids.length) { costEl.textContent = ""; return; }
      const run = ++estimateRun;
      const stems = Array.from(stemBox.querySelectorAll("input:checked")).map((i) => i.value);
      const preview = Boolean(form.querySelector('input[name="preview"]:checked'));
      try {
        if (remaining === null && form.dataset.hasKey === "1") {
          remaining = (await api("GET", form.dataset.quotaUrl)).remaining_minutes;
        }
        let minutes = 0;
        let detail = "";
        for (const id of ids) {
          const cost = await api("POST", form.dataset.estimateUrl, { track_id: id, stems, preview });
          minutes += cost.minutes;
          detail = ids.length > 1 ? `${ids.length} tracks` :
            `${cost.seconds} s × ${cost.stems} stem${cost.stems === 1 ? "" : "s"}`;
        }
        if (run !== estimateRun) return;
        const left = remaining === null ? "" : ` · ${remaining.toFixed(2)} min left`;
        const fits = remaining === null || Math.round(minutes * 100) <= Math.round(remaining * 100);
        costEl.textContent = fits
          ? `Costs about ${minutes.toFixed(2)} min (${detail})${left}.`
          : `Not enough LALAL.AI minutes: this needs ${minutes.toFixed(2)} min (${detail}), ${remaining.toFixed(2)} min left. Choose fewer stems or the 60-second preview.`;
        costEl.classList.toggle("is-over", !fits);
        submit.disabled = !fits;
      } catch (error) {
        if (run !== estimateRun) return;
        costEl.textContent = `Cost unknown: ${error.message}`;
        costEl.classList.add("is-over");
      }
    };
    form.addEventListener("soundforge:form-opened", () => { selectedStems = new Set(); estimate(); });

    const sync = (reset) => {
      const which = engine();
      form.querySelectorAll("[data-engine-only]").forEach((el) => {
        el.hidden = el.dataset.engineOnly !== which;
        el.querySelectorAll("input, select").forEach((i) => { i.disabled = el.hidden; });
      });
      if (table) {
        table.querySelectorAll("tr[data-model]").forEach((row) => {
          const on = which === "lalalai" ? row.dataset.model === "lalalai" : row.dataset.model === modelSelect.value;
          row.classList.toggle("is-selected", on);
        });
      }
      renderStems(reset);
      showMode();
      showModelState();
      estimate();
    };

    form.querySelectorAll('input[name="engine"]').forEach((r) => r.addEventListener("change", () => sync(true)));
    form.querySelectorAll('input[name="split_mode"]').forEach((r) => r.addEventListener("change", showMode));
    // A new model has other stems: tick that model's stems, not the old choice.
    if (modelSelect) modelSelect.addEventListener("change", () => sync(true));
    stemBox.addEventListener("change", estimate);
    const preview = form.querySelector('input[name="preview"]');
    if (preview) preview.addEventListener("change", estimate);
    sync(false);

    // A double click must not start two jobs: the button is disabled on the
    // first submit (the server also refuses a duplicate of an active job).
    form.addEventListener("submit", (event) => {
      if (form.dataset.submitting === "1") { event.preventDefault(); return; }
      form.dataset.submitting = "1";
      if (submit) {
        submit.dataset.label = submit.dataset.label || submit.textContent;
        submit.textContent = "Starting…";
        // Disable after the browser has collected the form data.
        setTimeout(() => { submit.disabled = true; }, 0);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    initBatch();
    initSeparateForms();
  });
})();
