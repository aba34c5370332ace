// SoundForge pages: progressive enhancement over server-rendered HTML.
// Every form works without this file; the script adds drag-and-drop uploads
// with progress, live job status over SSE and the settings page's buttons
// (the Separate dialog and the batch are in separate.js). Plain JS: the pages are few and a framework would
// only add weight and a build step.
"use strict";

(function () {
  const csrfToken = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };

  // JSON fetch with the session cookie and the CSRF header; errors come back
  // as {error: {code, message}} and are thrown with that message.
  async function api(method, url, body) {
    const headers = { "Accept": "application/json", "X-CSRF-Token": csrfToken() };
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) {
      const message = data && data.error ? data.error.message : `Request failed (${response.status}).`;
      const error = new Error(message);
      error.code = data && data.error ? data.error.code : "http_" + response.status;
      throw error;
    }
    return data;
  }
  window.soundforgeApi = api;

  const formatBytes = (n) => {
    if (n < 1024 * 1024) return `${Math.max(1, Math.round(n / 1024))} KB`;
    return `${(n / (1024 * 1024)).toFixed(1)} MB`;
  };

  // ---- uploads -----------------------------------------------------------

  function initUploads() {
    const zone = document.querySelector("[data-dropzone]");
    if (!zone) return;
    const form = zone.closest("form");
    const input = zone.querySelector('input[type="file"]');
    const list = document.querySelector("[data-upload-list]");
    const maxBytes = Number(zone.dataset.maxBytes || 0);
    let pending = 0;
    let succeeded = 0;

    const addItem = (file) => {
      const li = document.createElement("li");
      li.className = "upload-item";
      li.innerHTML = '<span class="name"></span><span class="state">Waiting…</span>' +
        '<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0"><span></span></div>';
      li.querySelector(".name").textContent = `${file.name} · ${formatBytes(file.size)}`;
      li.querySelector(".bar").setAttribute("aria-label", `Uploading ${file.name}`);
      list.appendChild(li);
      return li;
    };
    const setState = (li, text, cls) => {
      li.querySelector(".state").textContent = text;
      if (cls) li.classList.add(cls);
    };
    const setProgress = (li, pct) => {
      const bar = li.querySelector(".bar");
      bar.firstElementChild.style.width = `${pct}%`;
      bar.setAttribute("aria-valuenow", String(pct));
    };

    const finishOne = () => {
      pending -= 1;
      // Reload once everything is done so the new cards come from the server
      // (album art, duration and sort order are computed there).
      if (pending === 0 && succeeded > 0) {
        setTimeout(() => window.location.reload(), 600);
      }
    };

    const uploadOne = (file) => {
      const li = addItem(file);
      if (maxBytes && file.size > maxBytes) {
        setState(li, `Too large: the limit is ${formatBytes(maxBytes)}.`, "is-error");
        li.querySelector(".bar").classList.add("is-failed");
        return;
      }
      pending += 1;
      // One request per file: each gets its own progress bar and its own error.
      const body = new FormData();
      body.append("files", file, file.name);
      body.append("csrf_token", csrfToken());
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRF-Token", csrfToken());
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        const pct = Math.round((event.loaded / event.total) * 100);
        setProgress(li, pct);
        setState(li, pct < 100 ? `Uploading… ${pct}%` : "Checking audio…");
      });
      xhr.addEventListener("load", () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (_) { data = null; }
        if (xhr.status >= 200 && xhr.status < 300) {
          setProgress(li, 100);
          li.querySelector(".bar").classList.add("is-done");
          setState(li, "Added to your library", "is-done");
          succeeded += 1;
        } else {
          const message = data && data.error ? data.error.message : `Upload failed (${xhr.status}).`;
          li.querySelector(".bar").classList.add("is-failed");
          setState(li, message, "is-error");
        }
        finishOne();
      });
      xhr.addEventListener("error", () => {
        setState(li, "Network error: the upload did not reach the server.", "is-error");
        finishOne();
      });
      xhr.send(body);
    };

    const handleFiles = (files) => { Array.from(files).forEach(uploadOne); };

    input.addEventListener("change", () => { handleFiles(input.files); input.value = ""; });
    form.addEventListener("submit", (event) => { event.preventDefault(); handleFiles(input.files); });
    zone.addEventListener("click", (event) => {
      if (event.target === zone || event.target.closest(".dz-text")) input.click();
    });
    ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("is-over");
    }));
    ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.remove("is-over");
    }));
    zone.addEventListener("drop", (event) => {
      if (event.dataTransfer && event.dataTransfer.files.length) handleFiles(event.dataTransfer.files);
    });
    // Dropping a file anywhere else on the page must not navigate away from it.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
  }

  // ---- library toolbar --------------------------------------------------

  function initToolbar() {
    const form = document.querySelector("[data-library-filter]");
    if (!form) return;
    const sort = form.querySelector("select");
    if (sort) sort.addEventListener("change", () => form.submit());
    const search = form.querySelector('input[type="search"]');
    let timer = null;
    if (search) {
      // Filter the cards already on the page as the user types; Enter asks the server.
      search.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          const q = search.value.trim().toLowerCase();
          document.querySelectorAll("[data-track-card]").forEach((card) => {
            const hay = (card.dataset.search || "").toLowerCase();
            card.hidden = q !== "" && !hay.includes(q);
          });
        }, 120);
      });
    }
  }

  // ---- live job status ------------------------------------------------------

  const FINAL = new Set(["completed", "failed", "cancelled"]);

  function renderJob(el, job) {
    el.hidden = false;
    el.dataset.status = job.status;
    el.dataset.jobId = job.id;
    const badge = el.querySelector("[data-badge]");
    if (badge) {
      badge.className = `badge badge-${job.status}`;
      badge.textContent = job.status;
    }
    const pct = el.querySelector("[data-pct]");
    if (pct) pct.textContent = `${job.progress} %`;
    const bar = el.querySelector(".bar");
    if (bar) {
      bar.firstElementChild.style.width = `${job.progress}%`;
      bar.setAttribute("aria-valuenow", String(job.progress));
      bar.classList.toggle("is-done", job.status === "completed");
      bar.classList.toggle("is-failed", job.status === "failed");
    }
    const cancel = el.querySelector("[data-cancel]");
    if (cancel) {
      cancel.hidden = FINAL.has(job.status);
      const action = cancel.getAttribute("action");
      if (action) cancel.setAttribute("action", action.replace(/\/jobs\/[^/]+\/cancel$/, `/jobs/${job.id}/cancel`));
    }
    const error = el.querySelector("[data-error]");
    if (error) {
      error.hidden = job.status !== "failed" || !job.error;
      error.textContent = job.error || "";
    }
    const done = el.querySelector("[data-done]");
    if (done) done.hidden = job.status !== "completed";
  }

  function initLiveJobs() {
    const watchers = document.querySelectorAll("[data-job-status]");
    const root = document.querySelector("[data-events-url]");
    if (!root || !window.EventSource) return;
    const byJob = () => {
      const map = new Map();
      document.querySelectorAll("[data-job-status]").forEach((el) => {
        const key = el.dataset.jobId || "";
        if (!map.has(key)) map.set(key, []);
        map.get(key).push(el);
      });
      return map;
    };
    if (!watchers.length && !root.dataset.eventsAlways) return;
    // One stream per page for all of the user's jobs: a page with many
    // running jobs would otherwise exhaust the browser's connections.
    const source = new EventSource(root.dataset.eventsUrl);
    source.addEventListener("job", (event) => {
      const job = JSON.parse(event.data);
      let targets = byJob().get(job.id) || [];
      if (!targets.length) {
        // A job started elsewhere (another tab, the API): show it on its track's card.
        targets = Array.from(document.querySelectorAll(`[data-job-status][data-track-id="${job.track_id}"]`));
      }
      targets.forEach((el) => renderJob(el, job));
      if (job.status === "completed") {
        document.dispatchEvent(new CustomEvent("soundforge:job-completed", { detail: job }));
      }
    });
  }

  // Cancel without leaving the page.
  function initCancelForms() {
    document.addEventListener("submit", async (event) => {
      const form = event.target.closest("form[data-cancel]");
      if (!form) return;
      event.preventDefault();
      const button = form.querySelector("button");
      if (button) button.disabled = true;
      try {
        const job = await api("POST", form.getAttribute("action"));
        const el = form.closest("[data-job-status]");
        if (el && job && job.status) renderJob(el, job);
      } catch (error) {
        window.alert(error.message);
      } finally {
        if (button) button.disabled = false;
      }
    });
  }

  // The track page swaps in a finished separation (stems + player) in place.
  function initTrackPageRefresh() {
    const list = document.querySelector("[data-job-list]");
    if (!list) return;
    document.addEventListener("soundforge:job-completed", async (event) => {
      const job = event.detail;
      const card = list.querySelector(`[data-job-card="${job.id}"]`);
      // A card rendered finished already has its player; the stream may still
      // report the job's last change (it replays recent updates on connect).
      if (!card || card.dataset.loaded === "1" || card.querySelector("[data-player]")) return;
      card.dataset.loaded = "1";
      const response = await fetch(`${list.dataset.fragmentBase}/${job.id}`, { credentials: "same-origin" });
      if (!response.ok) return;
      const holder = document.createElement("div");
      holder.innerHTML = await response.text();
      const fresh = holder.firstElementChild;
      card.replaceWith(fresh);
      if (window.SoundForgePlayer) window.SoundForgePlayer.initAll(fresh);
      const zip = document.querySelector("[data-zip-link]");
      if (zip) zip.hidden = false;
    });
  }

  // ---- settings page -----------------------------------------------------------

  function initSettings() {
    const quotaBox = document.querySelector("[data-quota]");
    const showQuota = (q) => {
      if (!quotaBox) return;
      // Fresh minutes replace whatever error the page showed before.
      const quotaNote = quotaBox.querySelector("[data-quota-note]");
      if (quotaNote) quotaNote.textContent = "";
      quotaBox.querySelector("[data-remaining]").textContent = q.remaining_minutes.toFixed(1);
      quotaBox.querySelector("[data-used]").textContent = q.used_minutes.toFixed(1);
      quotaBox.querySelector("[data-total]").textContent = q.quota_minutes.toFixed(1);
    };
    const note = (el, text, ok) => {
      if (!el) return;
      el.textContent = text;
      el.className = `inline-result ${ok ? "ok" : "err"}`;
    };

    if (quotaBox && quotaBox.dataset.hasKey === "1") {
      api("GET", quotaBox.dataset.url).then(showQuota).catch((error) =>
        note(quotaBox.querySelector("[data-quota-note]"), error.message, false));
    }

    const testBtn = document.querySelector("[data-test-key]");
    if (testBtn) {
      testBtn.addEventListener("click", async () => {
        const out = document.querySelector("[data-test-result]");
        const input = document.querySelector('input[name="lalalai_api_key"]');
        testBtn.disabled = true;
        note(out, "Checking…", true);
        try {
          const result = await api("POST", testBtn.dataset.url, { key: input && input.value ? input.value : null });
          note(out, `Key works: ${result.remaining_minutes.toFixed(1)} minutes left.`, true);
          showQuota(result);
          // A refused save's banner is about an older key: it no longer applies.
          document.querySelectorAll("[data-key-error]").forEach((el) => { el.hidden = true; });
        } catch (error) {
          note(out, error.message, false);
        } finally {
          testBtn.disabled = false;
        }
      });
    }

    const cancelAll = document.querySelector("[data-cancel-all]");
    if (cancelAll) {
      cancelAll.addEventListener("click", async () => {
        const out = document.querySelector("[data-cancel-all-result]");
        if (!window.confirm("Cancel every LALAL.AI separation that is still queued or running?")) return;
        cancelAll.disabled = true;
        try {
          const result = await api("POST", cancelAll.dataset.url);
          note(out, `Cancelled ${result.cancelled} separation${result.cancelled === 1 ? "" : "s"}.`, true);
        } catch (error) {
          note(out, error.message, false);
        } finally {
          cancelAll.disabled = false;
        }
      });
    }

    // Highlight the section in view in the side navigation.
    const links = document.querySelectorAll(".side-nav a[href^='#']");
    if (links.length && "IntersectionObserver" in window) {
      const observer = new IntersectionObserver((entries) => {
        entries.forEach((entry) => {
          if (!entry.isIntersecting) return;
          links.forEach((a) => a.setAttribute("aria-current", String(a.hash === `#${entry.target.id}`)));
        });
      }, { rootMargin: "-30% 0px -60% 0px" });
      document.querySelectorAll(".settings-section").forEach((s) => observer.observe(s));
    }
  }

  // Forms that ask for confirmation (delete a track, revoke a token).
  function initConfirms() {
    document.addEventListener("submit", (event) => {
      const form = event.target;
      if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    }, true);
  }

  document.addEventListener("DOMContentLoaded", () => {
    initConfirms();
    initUploads();
    initToolbar();
    initLiveJobs();
    initCancelForms();
    initTrackPageRefresh();
    initSettings();
  });
})();
