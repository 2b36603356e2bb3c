// Gatehouse web console: the recording player and the hash check on a session's page.
// Screens come from the server as plain text spans (see /api/v1/sessions/{id}/frame); they are
// put in the page with textContent only, so nothing a recording holds is ever markup.
"use strict";

(function () {
  const api = (path) => fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((r) => r.ok ? r.json() : r.json().then((e) => Promise.reject(new Error(e.error ? e.error.message : r.statusText))));

  const verify = document.getElementById("verify");
  if (verify) {
    api(`/api/v1/sessions/${encodeURIComponent(verify.dataset.session)}/verify`)
      .then((v) => { verify.textContent = v.message; verify.className = v.result; verify.dataset.result = v.result; })
      .catch((e) => { verify.textContent = `the hash could not be checked: ${e.message}`; verify.className = "missing"; verify.dataset.result = "error"; });
  }

  const player = document.getElementById("player");
  if (!player) return;
  const id = encodeURIComponent(player.dataset.session);
  const base = `/api/v1/sessions/${id}`;
  const screen = document.getElementById("screen");
  const clock = document.getElementById("clock");
  const playButton = document.getElementById("play");
  const speed = document.getElementById("speed");
  const timeline = document.getElementById("timeline");
  const progress = document.getElementById("progress");
  const marksList = document.getElementById("marks");
  const hitsList = document.getElementById("hits");
  const liveButton = document.getElementById("live");
  // `wanted`: the moment the newest seek asked for while a frame was on its way (null: none).
  let duration = 0, now = 0, playing = false, live = false, lastTick = 0, pending = false, wanted = null, timer = null;

  function draw(frame) {
    const lines = document.createDocumentFragment();
    frame.lines.forEach((spans, row) => {
      const line = document.createElement("span");
      line.className = "line";
      spans.forEach((s) => {
        const el = document.createElement("span");
        el.textContent = s.text;
        let fg = s.fg, bg = s.bg;
        if (s.inverse) { [fg, bg] = [bg || "c7", fg || "c0"]; }
        const classes = [];
        if (s.bold) classes.push("b");
        if (s.italic) classes.push("i");
        if (s.underline) classes.push("u");
        if (s.faint) classes.push("f");
        if (fg) { if (/^c\d{1,2}$/.test(fg)) classes.push(`fg-${fg}`); else if (/^#[0-9a-fA-F]{6}$/.test(fg)) el.style.color = fg; }
        if (bg) { if (/^c\d{1,2}$/.test(bg)) classes.push(`bg-${bg}`); else if (/^#[0-9a-fA-F]{6}$/.test(bg)) el.style.backgroundColor = bg; }
        if (classes.length) el.className = classes.join(" ");
        line.appendChild(el);
      });
      line.dataset.row = String(row);
      lines.appendChild(line);
    });
    screen.replaceChildren(lines);
    screen.dataset.time = String(frame.time);
  }

  function show(t) {
    now = Math.max(0, Math.min(t, duration || t));
    clock.textContent = `${now.toFixed(1)}s / ${duration.toFixed(1)}s`;
    progress.style.width = duration > 0 ? `${(100 * now / duration).toFixed(2)}%` : "0";
  }

  // Shows the screen at `t`. One frame is fetched at a time; a seek made meanwhile is kept and
  // fetched next, so the screen always ends at the moment last asked for.
  function seek(t) {
    show(t);
    wanted = now;
    if (!pending) fetchWanted();
  }

  // The time is sent exactly as the recording has it: rounding it down would leave out an event
  // that happens at that very moment (the output a search hit points at, the recording's last).
  function fetchWanted() {
    const t = wanted;
    wanted = null;
    pending = true;
    api(`${base}/frame?t=${t}`)
      .then((frame) => { if (!live) { draw(frame); player.dataset.shown = frame.time.toFixed(3); } })
      .catch((e) => { screen.textContent = `the recording cannot be shown: ${e.message}`; })
      .finally(() => { pending = false; if (wanted !== null) fetchWanted(); });
  }

  function tick(ts) {
    if (!playing) return;
    if (lastTick) {
      now += ((ts - lastTick) / 1000) * Number(speed.value || 1);
      if (now >= duration) { now = duration; stop(); }
      seek(now);
    }
    lastTick = ts;
    requestAnimationFrame(tick);
  }

  function start() { if (now >= duration) now = 0; playing = true; lastTick = 0; playButton.textContent = "Pause"; requestAnimationFrame(tick); }
  function stop() { playing = false; playButton.textContent = "Play"; }

  playButton.addEventListener("click", () => { live = false; if (playing) stop(); else start(); });
  timeline.addEventListener("click", (e) => {
    if (e.target.classList.contains("mark")) return;
    const box = timeline.getBoundingClientRect();
    stop();
    seek(duration * (e.clientX - box.left) / box.width);
  });

  function markButton(m) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `mark-jump ${m.kind}`;
    b.textContent = `${m.time.toFixed(1)}s ${m.label}`;
    b.dataset.time = String(m.time);
    b.addEventListener("click", () => { stop(); live = false; seek(m.time); });
    return b;
  }

  function loadTimeline() {
    return api(`${base}/timeline`).then((t) => {
      duration = t.duration;
      timeline.querySelectorAll(".mark").forEach((m) => m.remove());
      marksList.replaceChildren();
      t.marks.forEach((m) => {
        const dot = document.createElement("button");
        dot.type = "button";
        dot.className = `mark ${m.kind}`;
        dot.title = `${m.time.toFixed(1)}s ${m.label}`;
        dot.style.left = duration > 0 ? `${(100 * m.time / duration).toFixed(2)}%` : "0";
        dot.addEventListener("click", () => { stop(); live = false; seek(m.time); });
        timeline.appendChild(dot);
        const item = document.createElement("li");
        item.appendChild(markButton(m));
        marksList.appendChild(item);
      });
      show(now);
    });
  }

  document.getElementById("find").addEventListener("submit", (e) => {
    e.preventDefault();
    const needle = document.getElementById("needle").value;
    hitsList.replaceChildren();
    if (!needle) return;
    api(`${base}/hits?q=${encodeURIComponent(needle)}`).then((r) => {
      if (!r.hits.length) { const li = document.createElement("li"); li.textContent = "not found"; hitsList.appendChild(li); return; }
      r.hits.forEach((h) => {
        const li = document.createElement("li");
        li.appendChild(markButton({ time: h.time, kind: `hit ${h.source}`, label: h.source }));
        hitsList.appendChild(li);
      });
    }).catch((err) => { const li = document.createElement("li"); li.textContent = err.message; hitsList.appendChild(li); });
  });

  function follow() {
    if (!live) return;
    api(`${base}/live`).then((frame) => {
      if (!live) return;
      draw(frame);
      duration = Math.max(duration, frame.time);
      show(frame.time);
      player.dataset.shown = frame.time.toFixed(3);
    }).catch(() => {}).finally(() => { if (live) timer = setTimeout(follow, 500); });
  }
  if (liveButton) {
    liveButton.addEventListener("click", () => { stop(); live = true; clearTimeout(timer); follow(); });
  }

  const params = new URLSearchParams(location.search);
  loadTimeline().then(() => {
    if (params.has("q")) document.getElementById("needle").value = params.get("q");
    const t = Number(params.get("t"));
    if (player.dataset.running === "true" && !params.has("t")) { live = true; follow(); }
    else seek(Number.isFinite(t) ? t : 0);
  }).catch((e) => { screen.textContent = `the recording cannot be shown: ${e.message}`; });
})();
