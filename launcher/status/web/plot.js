// A line plot on a canvas: the few lines the status page needs, so the page fetches nothing.
"use strict";
function linePlot(canvas, xs, ys, opts) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#5b6470";
  if (xs.length < 2) {
    ctx.fillText(opts.empty || "no data yet", 8, h / 2);
    return;
  }
  const top = Math.max(...ys) || 1;
  const left = 56, right = 8, upper = 8, lower = 20;
  const x0 = xs[0], span = xs[xs.length - 1] - x0 || 1;
  const px = (x) => left + ((x - x0) / span) * (w - left - right);
  const py = (y) => upper + (1 - y / top) * (h - upper - lower);
  ctx.strokeStyle = "#d5d9de";
  ctx.beginPath();
  for (const f of [0, 0.5, 1]) {
    ctx.moveTo(left, py(top * f));
    ctx.lineTo(w - right, py(top * f));
    ctx.fillText(opts.formatY(top * f), 4, py(top * f) + 4);
  }
  ctx.stroke();
  ctx.fillText(opts.formatX(x0), left, h - 5);
  const last = opts.formatX(xs[xs.length - 1]);
  ctx.fillText(last, w - right - ctx.measureText(last).width, h - 5);
  ctx.beginPath();
  ctx.moveTo(px(xs[0]), py(0));
  xs.forEach((x, i) => ctx.lineTo(px(x), py(ys[i])));
  ctx.lineTo(px(xs[xs.length - 1]), py(0));
  ctx.fillStyle = "rgba(31, 143, 214, 0.15)";
  ctx.fill();
  ctx.beginPath();
  xs.forEach((x, i) => (i ? ctx.lineTo(px(x), py(ys[i])) : ctx.moveTo(px(x), py(ys[i]))));
  ctx.strokeStyle = "#1f8fd6";
  ctx.lineWidth = 1.5;
  ctx.stroke();
}
