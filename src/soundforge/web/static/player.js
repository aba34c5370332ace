// Multi-stem player. Two ways to play, chosen by the server (data-mode):
//
// * "decode" (the usual case): every stem decoded into an AudioBuffer and
//   started on the same AudioContext clock, so they stay sample-aligned; the
//   waveform is drawn from the decoded samples.
// * "stream" (separations longer than the decode limit): decoded stems would
//   take gigabytes of browser memory (an hour of four stems is ~5 GB of
//   float samples), so each stem plays from an <audio> element that streams
//   it with Range requests, routed through the same gain nodes; elements that
//   drift from the first one are pulled back, and the waveform comes from the
//   server (/api/stems/{id}/peaks).
//
// Per stem in both: mute, solo, volume, a waveform to click to seek.
"use strict";

(function () {
  const PEAK_BUCKETS = 1600;
  // Streaming: how far (s) a stem may drift from the first before it is pulled
  // back, and how often that is checked.
  const MAX_DRIFT = 0.04;
  const DRIFT_CHECK = 0.5;

  // The Space-bar hint is for a keyboard and a mouse, not a touch screen.
  const KEYBOARD = window.matchMedia("(hover: hover) and (pointer: fine)").matches;

  const fmt = (seconds) => {
    const s = Math.max(0, Math.floor(seconds));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };

  // Min/max pairs over the whole buffer, mixed down to mono; computed once,
  // then resampled to whatever width the canvas has.
  function computePeaks(buffer) {
    const length = buffer.length;
    const buckets = Math.min(PEAK_BUCKETS, Math.max(1, length));
    const step = length / buckets;
    const mins = new Float32Array(buckets);
    const maxs = new Float32Array(buckets);
    const channels = [];
    for (let c = 0; c < buffer.numberOfChannels; c++) channels.push(buffer.getChannelData(c));
    for (let b = 0; b < buckets; b++) {
      const start = Math.floor(b * step);
      const end = Math.min(length, Math.floor((b + 1) * step));
      let lo = 0, hi = 0;
      // Stride through long buckets: the picture is the same, the work is not.
      const stride = Math.max(1, Math.floor((end - start) / 256));
      for (let i = start; i < end; i += stride) {
        let v = 0;
        for (let c = 0; c < channels.length; c++) v += channels[c][i];
        v /= channels.length;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      mins[b] = lo;
      maxs[b] = hi;
    }
    return { mins, maxs };
  }

  function drawWave(canvas, peaks, color) {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    canvas.width = width;
    canvas.height = height;
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, width, height);
    const mid = height / 2;
    g.fillStyle = "rgba(255,255,255,0.06)";
    g.fillRect(0, mid - ratio / 2, width, ratio);
    if (!peaks) return;
    const n = peaks.mins.length;
    // Normalise to the loudest peak so quiet stems are still readable.
    let top = 0.0001;
    for (let i = 0; i < n; i++) top = Math.max(top, -peaks.mins[i], peaks.maxs[i]);
    const scale = (mid - 2 * ratio) / top;
    g.fillStyle = color;
    const bar = Math.max(1, Math.round(2 * ratio));
    const gap = Math.max(1, Math.round(ratio));
    for (let x = 0; x < width; x += bar + gap) {
      const from = Math.floor((x / width) * n);
      const to = Math.max(from + 1, Math.floor(((x + bar) / width) * n));
      let lo = 0, hi = 0;
      for (let i = from; i < to && i < n; i++) {
        if (peaks.mins[i] < lo) lo = peaks.mins[i];
        if (peaks.maxs[i] > hi) hi = peaks.maxs[i];
      }
      const y1 = mid - hi * scale;
      const y2 = mid - lo * scale;
      g.fillRect(x, y1, bar, Math.max(ratio, y2 - y1));
    }
  }

  // One AudioContext for the page: browsers cap how many may exist at once.
  let sharedCtx = null;
  const audioContext = () => {
    if (!sharedCtx) sharedCtx = new (window.AudioContext || window.webkitAudioContext)();
    return sharedCtx;
  };

  class StemPlayer {
    constructor(root) {
      this.root = root;
      this.mode = root.dataset.mode === "stream" ? "stream" : "decode";
      this.ctx = audioContext();
      this.master = this.ctx.createGain();
      this.master.connect(this.ctx.destination);
      this.stems = Array.from(root.querySelectorAll("[data-stem]")).map((row) => ({
        row,
        name: row.dataset.name,
        src: row.dataset.src,
        peaksUrl: row.dataset.peaks,
        buffer: null,
        audio: null, // stream mode: the <audio> element
        duration: 0,
        peaks: null,
        source: null,
        gain: this.ctx.createGain(),
        volume: 1,
        // Complements and the original mix start muted (see _player.html).
        muted: row.dataset.defaultMuted === "1",
        solo: false,
      }));
      this.stems.forEach((s) => s.gain.connect(this.master));
      this.playBtn = root.querySelector("[data-play]");
      this.seek = root.querySelector("[data-seek]");
      this.timeEl = root.querySelector("[data-time]");
      this.status = root.querySelector("[data-player-status]");
      this.duration = 0;
      this.offset = 0; // position (s) when playback last started or paused
      this.startedAt = 0; // ctx time at which offset was playing
      this.playing = false;
      this.seeking = false;
      this.lastDriftCheck = 0;
      this.bind();
      this.applyGains();
      this.setState("loading");
      // Decoding costs memory and time: a separation further down the page
      // loads only when it scrolls into view.
      if ("IntersectionObserver" in window) {
        const seen = new IntersectionObserver((entries) => {
          if (entries.some((e) => e.isIntersecting)) {
            seen.disconnect();
            this.load();
          }
        }, { rootMargin: "200px" });
        seen.observe(root);
      } else {
        this.load();
      }
    }

    setState(state) {
      this.root.dataset.state = state;
    }

    async load() {
      let failed = 0;
      const loadOne = this.mode === "stream" ? (s) => this.openStream(s) : (s) => this.decode(s);
      await Promise.all(this.stems.map(async (stem) => {
        try {
          await loadOne(stem);
          stem.row.dataset.loaded = "1";
        } catch (error) {
          failed += 1;
          stem.row.dataset.loaded = "error";
          stem.row.title = `Could not load ${stem.name}: ${error.message}`;
        }
      }));
      const loaded = this.stems.filter((s) => s.buffer || s.audio);
      this.duration = loaded.reduce((d, s) => Math.max(d, s.duration), 0);
      if (!loaded.length) {
        this.status.textContent = "The stems could not be loaded for playback; you can still download them.";
        this.setState("error");
        return;
      }
      this.status.textContent = failed
        ? `${failed} stem${failed > 1 ? "s" : ""} could not be loaded.`
        : `Ready.${KEYBOARD ? " Space plays and pauses while the player has focus." : ""}`;
      this.playBtn.disabled = false;
      this.setState("ready");
      this.render();
      if ("ResizeObserver" in window) {
        new ResizeObserver(() => this.stems.forEach((s) => this.drawStem(s))).observe(this.root);
      }
    }

    async decode(stem) {
      const response = await fetch(stem.src, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.arrayBuffer();
      stem.buffer = await this.ctx.decodeAudioData(data);
      stem.duration = stem.buffer.duration;
      stem.peaks = computePeaks(stem.buffer);
      this.drawStem(stem);
    }

    async openStream(stem) {
      const audio = new Audio();
      audio.preload = "auto";
      await new Promise((resolve, reject) => {
        audio.addEventListener("loadedmetadata", resolve, { once: true });
        audio.addEventListener("error", () => {
          reject(new Error(audio.error && audio.error.message ? audio.error.message : "the file could not be played"));
        }, { once: true });
        audio.src = stem.src;
      });
      this.ctx.createMediaElementSource(audio).connect(stem.gain);
      stem.audio = audio;
      stem.duration = audio.duration;
      this.fetchPeaks(stem); // the waveform arrives when it arrives; playback needs none
    }

    async fetchPeaks(stem) {
      try {
        const response = await fetch(stem.peaksUrl, { credentials: "same-origin" });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const data = await response.json();
        stem.peaks = { mins: Float32Array.from(data.mins), maxs: Float32Array.from(data.maxs) };
        stem.row.dataset.peaks = "1";
        this.drawStem(stem);
      } catch (error) {
        stem.row.dataset.peaks = "error";
      }
    }

    drawStem(stem) {
      const canvas = stem.row.querySelector("canvas");
      if (!canvas) return;
      const color = getComputedStyle(stem.row).getPropertyValue("--stem").trim() || "#ff7a3d";
      drawWave(canvas, stem.peaks, color);
    }

    bind() {
      this.playBtn.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
      this.root.addEventListener("keydown", (event) => {
        if (event.code === "Space" && event.target.tagName !== "INPUT") {
          event.preventDefault();
          if (!this.playBtn.disabled) this.playing ? this.pause() : this.play();
        }
      });
      this.seek.addEventListener("input", () => {
        this.seeking = true;
        this.timeEl.textContent = `${fmt((this.seek.value / 1000) * this.duration)} / ${fmt(this.duration)}`;
      });
      this.seek.addEventListener("change", () => {
        this.seeking = false;
        this.seekTo((this.seek.value / 1000) * this.duration);
      });
      const master = this.root.querySelector("[data-master]");
      if (master) master.addEventListener("input", () => { this.master.gain.value = master.value / 100; });
      this.stems.forEach((stem) => {
        const mute = stem.row.querySelector("[data-mute]");
        const solo = stem.row.querySelector("[data-solo]");
        const volume = stem.row.querySelector("[data-volume]");
        mute.setAttribute("aria-pressed", String(stem.muted));
        mute.addEventListener("click", () => {
          stem.muted = !stem.muted;
          mute.setAttribute("aria-pressed", String(stem.muted));
          this.applyGains();
        });
        solo.addEventListener("click", () => {
          stem.solo = !stem.solo;
          solo.setAttribute("aria-pressed", String(stem.solo));
          this.applyGains();
        });
        volume.addEventListener("input", () => {
          stem.volume = volume.value / 100;
          this.applyGains();
        });
        const wave = stem.row.querySelector("[data-wave]");
        wave.addEventListener("click", (event) => {
          if (!this.duration) return;
          const rect = wave.getBoundingClientRect();
          this.seekTo(((event.clientX - rect.left) / rect.width) * this.duration);
        });
      });
    }

    // Solo wins over mute: with any stem soloed, only soloed stems sound.
    applyGains() {
      const anySolo = this.stems.some((s) => s.solo);
      const now = this.ctx.currentTime;
      this.stems.forEach((stem) => {
        const audible = anySolo ? stem.solo : !stem.muted;
        const value = audible ? stem.volume : 0;
        // A short ramp avoids clicks when a stem is switched on or off.
        stem.gain.gain.setTargetAtTime(value, now, 0.015);
        stem.row.dataset.gain = value.toFixed(2);
        stem.row.classList.toggle("is-silent", value === 0);
      });
    }

    // Stream mode: the first playable stem's element is the clock.
    leader() {
      return this.stems.find((s) => s.audio);
    }

    position() {
      if (!this.playing) return this.offset;
      if (this.mode === "stream") return Math.min(this.duration, this.leader().audio.currentTime);
      return Math.min(this.duration, this.offset + (this.ctx.currentTime - this.startedAt));
    }

    async play() {
      if (this.ctx.state === "suspended") await this.ctx.resume();
      players.forEach((other) => { if (other !== this && other.playing) other.pause(); });
      if (this.offset >= this.duration) this.offset = 0;
      if (this.mode === "stream") {
        this.playing = true;
        const streams = this.stems.filter((s) => s.audio);
        streams.forEach((s) => { s.audio.currentTime = Math.min(this.offset, s.duration); });
        this.showPlaying();
        const results = await Promise.allSettled(streams.map((s) => s.audio.play()));
        // AbortError only means a pause came first; anything else (a browser
        // that refuses to play) must not leave the player saying "playing".
        const refused = results.find((r) => r.status === "rejected" && r.reason.name !== "AbortError");
        if (refused && this.playing) {
          this.pause();
          this.status.textContent = `Playback did not start: ${refused.reason.message}`;
        }
        return;
      }
      // All sources start at the same future instant on the same clock.
      const at = this.ctx.currentTime + 0.06;
      this.stems.forEach((stem) => {
        if (!stem.buffer) return;
        const source = this.ctx.createBufferSource();
        source.buffer = stem.buffer;
        source.connect(stem.gain);
        source.start(at, Math.min(this.offset, stem.buffer.duration));
        stem.source = source;
      });
      this.startedAt = at;
      this.playing = true;
      this.showPlaying();
    }

    showPlaying() {
      this.setState("playing");
      this.playBtn.setAttribute("aria-label", "Pause");
      this.playBtn.innerHTML = PAUSE_ICON;
      this.tick();
    }

    stopSources() {
      this.stems.forEach((stem) => {
        if (stem.audio) stem.audio.pause();
        if (stem.source) {
          try { stem.source.stop(); } catch (_) { /* already stopped */ }
          stem.source.disconnect();
          stem.source = null;
        }
      });
    }

    pause() {
      this.offset = this.position();
      this.stopSources();
      this.playing = false;
      this.setState("paused");
      this.playBtn.setAttribute("aria-label", "Play");
      this.playBtn.innerHTML = PLAY_ICON;
      this.render();
    }

    seekTo(seconds) {
      const wasPlaying = this.playing;
      if (wasPlaying) {
        this.stopSources();
        this.playing = false;
      }
      this.offset = Math.max(0, Math.min(this.duration, seconds));
      if (wasPlaying) this.play(); else this.render();
    }

    tick() {
      if (!this.playing) return;
      const streamsEnded = this.mode === "stream" && this.stems.every((s) => !s.audio || s.audio.ended);
      if (this.position() >= this.duration || streamsEnded) {
        this.pause();
        this.offset = 0;
        this.setState("ended");
        this.render();
        return;
      }
      if (this.mode === "stream") this.keepInStep();
      this.render();
      requestAnimationFrame(() => this.tick());
    }

    // Separate elements drift apart (each keeps its own clock); pull every
    // stem that strays back to the leader's position.
    keepInStep() {
      const now = this.ctx.currentTime;
      if (now - this.lastDriftCheck < DRIFT_CHECK) return;
      this.lastDriftCheck = now;
      const lead = this.leader();
      const at = lead.audio.currentTime;
      this.stems.forEach((stem) => {
        if (!stem.audio || stem === lead || stem.audio.ended) return;
        if (Math.abs(stem.audio.currentTime - at) > MAX_DRIFT) stem.audio.currentTime = at;
      });
    }

    render() {
      const pos = this.position();
      this.root.dataset.position = pos.toFixed(2);
      if (!this.seeking) {
        this.seek.value = this.duration ? Math.round((pos / this.duration) * 1000) : 0;
        this.timeEl.textContent = `${fmt(pos)} / ${fmt(this.duration)}`;
      }
      const left = this.duration ? `${(pos / this.duration) * 100}%` : "0";
      this.root.querySelectorAll(".playhead").forEach((p) => { p.style.left = left; });
    }
  }

  const PLAY_ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="M8 5.5v13a1 1 0 0 0 1.5.86l10.5-6.5a1 1 0 0 0 0-1.72L9.5 4.64A1 1 0 0 0 8 5.5z"/></svg>';
  const PAUSE_ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="6" y="5" width="4.5" height="14" rx="1.2" fill="currentColor"/><rect x="13.5" y="5" width="4.5" height="14" rx="1.2" fill="currentColor"/></svg>';

  const players = [];
  function initAll(root) {
    (root || document).querySelectorAll("[data-player]").forEach((el) => {
      if (el.dataset.bound) return;
      el.dataset.bound = "1";
      players.push(new StemPlayer(el));
    });
  }

  window.SoundForgePlayer = { initAll, players };
  document.addEventListener("DOMContentLoaded", () => initAll(document));
})();
