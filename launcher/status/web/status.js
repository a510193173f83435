// The status page: draws one `status --json --failed` document, and polls for the next one
// when served. window.statusPage exposes what was drawn (layout, colours, timings) to tests;
// refreshes counts documents drawn, polls the questions asked.
"use strict";
(function () {
  const STATES = ["pending", "held", "running", "done", "failed", "stale"];
  const COLOURS = {
    pending: "#c3c8cf", held: "#e0a800", running: "#1f8fd6",
    done: "#2e9e44", failed: "#d62f2f", stale: "#a347c8",
  };
  const BINS = 120; // points of the throughput plot, at most
  const MIN_STEP_MS = 2000; // records say when a shard ended to the second
  const SHOWN_FAILED = 20; // failed shards listed by name, then a count
  const config = JSON.parse(document.getElementById("config").textContent);
  const $ = (id) => document.getElementById(id);
  const page = {
    doc: null, layout: null, colours: COLOURS, firstPaintMs: null,
    lastRefreshMs: null, refreshes: 0, polls: 0, pinned: null, cell: cell,
  };
  window.statusPage = page;

  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  function dur(s) {
    if (s === null || s === undefined) return "-";
    const m = Math.floor(s / 60), h = Math.floor(m / 60), two = (v) => String(v).padStart(2, "0");
    return h ? `${h}h${two(m % 60)}m` : `${m}m${two(Math.floor(s) % 60)}s`;
  }
  const rate = (v) => (v === null || v === undefined ? "-" : v >= 100 ? v.toFixed(0) : v.toFixed(1));
  const clock = (ms) => new Date(ms).toISOString().slice(11, 16) + "Z";
  const shardName = (r, i) => (r.shard === null ? r.tag || `#${i}` : `shard ${r.shard}`);

  // -- the grid: one cell per shard, on a canvas (an element per shard: seconds at 100,000) --
  function grid(n, width) {
    let size = Math.floor(Math.sqrt((width * 420) / Math.max(n, 1)));
    size = Math.max(2, Math.min(22, size));
    const gap = size >= 6 ? 1 : 0;
    const cols = Math.max(1, Math.floor(width / size));
    return { n: n, size: size, gap: gap, cols: cols, rows: Math.ceil(n / cols) };
  }
  function cell(i) {
    const g = page.layout;
    return { x: (i % g.cols) * g.size, y: Math.floor(i / g.cols) * g.size, w: g.size - g.gap };
  }
  function drawGrid(shards) {
    const canvas = $("grid");
    const width = Math.max(200, $("gridbox").clientWidth);
    const g = (page.layout = grid(shards.length, width));
    const dpr = window.devicePixelRatio || 1;
    canvas.style.width = g.cols * g.size + "px";
    canvas.style.height = g.rows * g.size + "px";
    canvas.width = Math.round(g.cols * g.size * dpr);
    canvas.height = Math.round(g.rows * g.size * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    for (const state of STATES) {
      ctx.fillStyle = COLOURS[state];
      for (let i = 0; i < shards.length; i++) {
        if (shards[i].state !== state) continue;
        const c = cell(i);
        ctx.fillRect(c.x, c.y, c.w, c.w);
      }
    }
    if (g.size >= 8) progressBars(ctx, shards);
  }
  // Which running shards are behind: a bar along the bottom of each cell (the centre keeps
  // the state's colour).
  function progressBars(ctx, shards) {
    for (let i = 0; i < shards.length; i++) {
      const r = shards[i];
      if ((r.state !== "running" && r.state !== "stale") || !r.total) continue;
      const c = cell(i), h = Math.max(2, Math.floor(c.w / 5)), y = c.y + c.w - h;
      ctx.fillStyle = "rgba(255, 255, 255, 0.6)";
      ctx.fillRect(c.x, y, c.w, h);
      ctx.fillStyle = "#0b3d66";
      ctx.fillRect(c.x, y, Math.round((c.w * Math.min(r.done, r.total)) / r.total), h);
    }
  }
  function at(event) {
    const g = page.layout, box = $("grid").getBoundingClientRect();
    const col = Math.floor((event.clientX - box.left) / g.size);
    const row = Math.floor((event.clientY - box.top) / g.size);
    const i = row * g.cols + col;
    return col >= 0 && col < g.cols && row >= 0 && i < g.n ? i : null;
  }
  function tip(i) {
    const r = page.doc.shards[i];
    const lines = [
      `${shardName(r, i)}${r.tag && r.shard !== null ? ` (${r.tag})` : ""}` +
        (page.doc.arrays.length > 1 ? `, array ${r.array}` : ""),
      `state: ${r.state}${r.note ? ` - ${r.note}` : ""}`,
      `items: ${r.done}/${r.total === null ? "?" : r.total} done, ${r.failed_items} failed` +
        `, ${rate(r.items_per_s)} items/s` + (r.eta_s !== null ? `, ETA ${dur(r.eta_s)}` : ""),
    ];
    if (r.ended_at) lines.push(`done at: ${r.ended_at}`);
    if (r.exit_code !== null) lines.push(`exit code: ${r.exit_code}`);
    if (r.slurm_id || r.slurm_state) {
      const why = r.slurm_reason ? ` (${r.slurm_reason})` : "";
      lines.push(`SLURM: ${r.slurm_state || "-"}${why}, job ${r.slurm_id || "-"}`);
    }
    if (r.heartbeat_age_s !== null && !r.final) lines.push(`last heartbeat: ${dur(r.heartbeat_age_s)} ago`);
    if (r.log) lines.push(`.err: ${r.log}.err`);
    if (r.job_dir) lines.push(`job dir: ${r.job_dir}`);
    return lines.join("\n");
  }
  function showTip(i) {
    const t = $("tip");
    if (i === null) { t.hidden = true; return; }
    const c = cell(i), g = page.layout;
    t.textContent = tip(i);
    t.hidden = false;
    t.classList.toggle("pinned", page.pinned === i);
    const right = c.x + g.size + 8 + t.offsetWidth > $("gridbox").clientWidth;
    t.style.left = Math.max(0, right ? c.x - t.offsetWidth - 8 : c.x + g.size + 8) + "px";
    t.style.top = c.y + g.size + 4 + "px";
  }
  $("grid").addEventListener("mousemove", (e) => { if (page.pinned === null) showTip(at(e)); });
  $("grid").addEventListener("mouseleave", () => { if (page.pinned === null) showTip(null); });
  $("grid").addEventListener("click", (e) => {
    const i = at(e);
    page.pinned = i === page.pinned ? null : i;
    showTip(i);
  });

  // -- throughput: each shard's items spread over the time it ran, summed -----------------
  function throughput(doc) {
    const now = Date.parse(doc.updated_at), spans = [];
    let t0 = Infinity, t1 = -Infinity;
    for (const r of doc.shards) {
      const items = r.processed + r.failed_items;
      if (!items || !r.elapsed_s) continue;
      const end = r.ended_at ? Date.parse(r.ended_at)
        : r.heartbeat_age_s !== null ? now - r.heartbeat_age_s * 1000 : NaN;
      if (isNaN(end)) continue;
      const start = end - r.elapsed_s * 1000;
      spans.push([start, end, items]);
      t0 = Math.min(t0, start);
      t1 = Math.max(t1, end);
    }
    if (!doc.totals.finished) t1 = Math.max(t1, now);
    if (!spans.length || t1 <= t0) return { xs: [], ys: [] };
    // a point per median shard run at least: a finer plot would show records' rounding
    const runs = spans.map(([a, b]) => b - a).sort((x, y) => x - y);
    const step = Math.max((t1 - t0) / BINS, runs[runs.length >> 1], MIN_STEP_MS);
    const bins = Math.max(1, Math.ceil((t1 - t0) / step)), ys = new Array(bins).fill(0);
    for (const [a, b, items] of spans) {
      const perMs = items / Math.max(b - a, 1);
      for (let k = Math.max(0, Math.floor((a - t0) / step)); k < bins; k++) {
        const lo = t0 + k * step, hi = lo + step;
        if (lo >= b) break;
        ys[k] += (perMs * (Math.min(hi, b) - Math.max(lo, a))) / (step / 1000);
      }
    }
    return { xs: ys.map((_, k) => t0 + (k + 0.5) * step), ys: ys };
  }

  // -- the rest of the page -------------------------------------------------------------------
  function drawTotals(doc) {
    const t = doc.totals, n = t.shards, it = t.items;
    const states = STATES.filter((s) => n[s]).map((s) => `${n[s]} ${s}`).join(", ");
    const est = it.estimated_total !== it.total ? ` (~${it.estimated_total} estimated)` : "";
    let items = `items: ${it.done}/${it.total}${est} done, ${it.failed} failed`;
    if (!t.finished) items += t.items_per_s ? `; ${rate(t.items_per_s)} items/s; ETA ${dur(t.eta_s)}` : "; rate and ETA once items are processed";
    $("totals").innerHTML = `<div id="shard-totals">shards: ${n.total} (${esc(states)})</div><div id="item-totals">${esc(items)}</div>`;
    $("legend").innerHTML = STATES.map((s) => `<span class="key" data-state="${s}"><i style="background:${COLOURS[s]}"></i>${s} <b>${n[s]}</b></span>`).join("");
    const ended = t.finished;
    const banner = $("banner");
    banner.className = ended ? "ended" + (n.failed ? " failed" : "") : "";
    if (ended) {
      banner.textContent = `Every shard has ended: ${n.done} done, ${n.failed} failed` + (t.last_ended_at ? `; the last at ${t.last_ended_at}` : "") + ".";
    } else {
      banner.textContent = config.document ? "Still running when this snapshot was taken." : `Running; this page refreshes every ${config.poll_s} s.`;
    }
    $("where").textContent = `${doc.dir} (${doc.backend}) - ${config.document ? "snapshot" : "updated"} ${doc.updated_at}`;
    document.title = `${ended ? "ended" : `${n.done}/${n.total} done`} - status`;
  }
  function drawFailures(doc) {
    const f = doc.failures || { errors: {}, failed_shards: [] };
    const errors = Object.entries(f.errors).sort((a, b) => b[1].count - a[1].count);
    let out = "";
    if (errors.length) {
      out += "<table id=\"errors\"><tr><th>error</th><th>items</th><th>shards</th><th>first example</th></tr>";
      for (const [error, v] of errors) {
        const first = v.first || {};
        const tb = String(first.traceback || "").trimEnd();
        out += `<tr><td><code>${esc(error)}</code></td><td class="n">${v.count}</td><td class="n">${v.shards.length}</td>` +
          `<td>item <code>${esc(first.item ?? "?")}</code> (${esc(first.shard ?? "?")}): ${esc(first.message ?? "")}` +
          (tb ? `<details><summary>traceback</summary><pre>${esc(tb)}</pre></details>` : "") + "</td></tr>";
      }
      out += "</table>";
    }
    const shards = f.failed_shards || [];
    if (shards.length) {
      out += `<p>${shards.length} failed shard(s):</p><ul id="failed-shards">`;
      for (const s of shards.slice(0, SHOWN_FAILED)) {
        out += `<li>${esc(s.tag)}: ${esc(s.note || "failed")}${s.log ? ` <code>${esc(s.log)}.err</code>` : ""}</li>`;
      }
      if (shards.length > SHOWN_FAILED) out += `<li>... and ${shards.length - SHOWN_FAILED} more (hover their cells)</li>`;
      out += "</ul>";
    }
    $("failures").innerHTML = out || "<p>No failures.</p>";
  }
  function drawCommand(doc) {
    const quote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\"'\"'")}'`);
    $("argv").textContent = doc.argv.length ? doc.argv.map(quote).join(" ") : "(not recorded: this directory has no sweep record)";
    const rows = doc.arrays.map((a) => `<tr><td>${a.index}</td><td><code>${esc(a.overrides.join(" ") || "(no overrides)")}</code></td><td><code>${esc(a.key)}</code></td></tr>`);
    $("arrays").innerHTML = rows.length ? "<tr><th>array</th><th>overrides</th><th>config hash</th></tr>" + rows.join("") : "";
  }
  function draw(doc) {
    page.doc = doc;
    drawTotals(doc);
    drawGrid(doc.shards);
    if (page.pinned !== null && page.pinned < doc.shards.length) showTip(page.pinned);
    else { page.pinned = null; showTip(null); }
    const tp = throughput(doc);
    linePlot($("plot"), tp.xs, tp.ys, { formatX: clock, formatY: (y) => rate(y) + "/s", empty: "no items processed yet" });
    drawFailures(doc);
    drawCommand(doc);
  }
  function painted() {
    requestAnimationFrame(() => { if (page.firstPaintMs === null) page.firstPaintMs = performance.now(); });
  }
  function problem(text) {
    $("problem").hidden = !text;
    $("problem").textContent = text || "";
  }

  let version = null; // the server's ETag of the document drawn: unchanged ones are not sent
  async function poll() {
    const t0 = performance.now();
    try {
      const headers = version ? { "If-None-Match": version } : {};
      const r = await fetch(config.source, { cache: "no-store", headers: headers });
      page.polls += 1;
      if (r.status !== 304) {
        const body = await r.json();
        if (!r.ok) throw new Error(body.error || r.statusText);
        version = r.headers.get("ETag");
        draw(body);
        painted();
        await new Promise((done) => requestAnimationFrame(() => done()));
        page.lastRefreshMs = performance.now() - t0;
        page.refreshes += 1;
      }
      problem(page.doc && page.doc.damaged);
    } catch (e) {
      problem(`Cannot read the sweep's status (${e.message}); showing the last one read.`);
    }
    setTimeout(poll, config.poll_s * 1000);
  }

  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => page.doc && draw(page.doc), 100);
  });
  if (config.document) {
    draw(config.document);
    problem(config.document.damaged);
    painted();
  } else {
    poll();
  }
})();
