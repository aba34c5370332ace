// "Export this mix": send the player's current state (static/player.js) with the
// form, so the server renders what the user hears: each stem's volume, mute
// and solo, and the master volume. The server applies the player's rule
// (solo beats mute) itself, in soundforge/export/mixing.py.
//
// Read from the player's controls, not its internals, so the two stay apart.
// Listens on the document: job cards swapped in after a separation finishes
// work too.
"use strict";

(function () {
  const pressed = (button) => button && button.getAttribute("aria-pressed") === "true";

  function playerState(card) {
    const gains = [];
    const muted = [];
    const soloed = [];
    // The original-mix row is there to A/B against the stems; it is not a stem,
    // and an exported mix is made of the separation's stems only.
    card.querySelectorAll("[data-stem]:not([data-original])").forEach((row) => {
      const name = row.dataset.name;
      const volume = row.querySelector("[data-volume]");
      const value = volume ? Number(volume.value) / 100 : 1;
      if (value !== 1) gains.push(`${name}=${value}`);
      if (pressed(row.querySelector("[data-mute]"))) muted.push(name);
      if (pressed(row.querySelector("[data-solo]"))) soloed.push(name);
    });
    const master = card.querySelector("[data-master]");
    return {
      mix: gains.join(","),
      mute: muted.join(","),
      solo: soloed.join(","),
      master: master ? String(Number(master.value) / 100) : "1",
    };
  }

  document.addEventListener("submit", (event) => {
    const form = event.target.closest ? event.target.closest("[data-export-mix]") : null;
    if (!form) return;
    const card = form.closest("[data-job-card]") || document;
    const preset = event.submitter && event.submitter.name === "preset";
    // A preset is the whole mix: the player's state is not sent with it.
    const state = preset ? { mix: "", mute: "", solo: "", master: "1" } : playerState(card);
    Object.entries(state).forEach(([name, value]) => {
      form.querySelector(`[data-export-field="${name}"]`).value = value;
    });
    const status = form.querySelector("[data-export-status]");
    if (status) status.textContent = "Rendering… the download starts when the file is ready.";
    setTimeout(() => { if (status) status.textContent = ""; }, 8000);
  });
})();
