/* stepviz's explorable export page: one step k moves every view. No framework, nothing fetched: the data is the
   JSON in #stepviz-data (written by stepviz/export/page_data.py). Steps are numbered from 1, as on screen. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("stepviz-data").textContent);
  var runs = data.runs, main = runs[0];
  // the slider reaches the longest run's last step; a shorter run (the main one too) shows its own last step
  var N = Math.max.apply(null, runs.map(function (run) { return run.steps.length; }));
  var M = main.steps.length;
  // Okabe & Ito's colour-blind-safe colours, each series also with its own dash pattern
  var COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000", "#F0E442"];
  var DASHES = ["", "8 4", "3 3", "10 3 3 3", "1 4", "14 4", "6 2 2 2", "2 6"];
  var k = 1, timer = null, token = null, plots = [];

  function byId(id) { return document.getElementById(id); }
  function make(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    if (Math.abs(value) >= 1000 || value === Math.round(value)) return String(Math.round(value * 1000) / 1000);
    return String(parseFloat(Number(value).toPrecision(digits || 4)));
  }
  function picture(src, caption) {
    var figure = make("figure"), img = make("img", {src: src, alt: caption});
    figure.appendChild(img);
    figure.appendChild(make("figcaption", {}, caption));
    return figure;
  }
  function stepOf(run, n) { return run.steps[Math.min(n, run.steps.length) - 1]; }

  // ------------------------------------------------------------ the pictures of step k
  var pictureSlots = {};
  function buildPictures() {
    var box = byId("pictures");
    [["x_t", "x_t (latents after step k)"], ["x0", "x0-hat (predicted clean picture)"],
     ["ch_x_t", "the 4 channels of x_t"], ["ch_x0", "the 4 channels of x0-hat"]].forEach(function (pair) {
      var figure = picture(main.steps[0].x_t, pair[1]);
      pictureSlots[pair[0]] = figure.querySelector("img");
      box.appendChild(figure);
    });
    var extras = data.extras;
    extras.inputs.forEach(function (item) { byId("given").appendChild(picture(item.src, item.label)); });
    if (extras.blend) {
      byId("inputs-title").textContent = "The inpaint blend at this step";
      byId("inputs-caption").textContent = "After every scheduler step, the loop keeps x_t where the mask is " +
        "white and puts back the original picture re-noised to the next timestep (the background) elsewhere: " +
        "x_t = m · x_t + (1 − m) · background.";
      [["background", "background (original, re-noised)"], ["mask", "mask m (white = repaint)"],
       ["blended", "x_t after the blend"]].forEach(function (pair) {
        var figure = picture(main.steps[0].x_t, pair[1]);
        pictureSlots["blend_" + pair[0]] = figure.querySelector("img");
        byId("inputs").appendChild(figure);
      });
    } else if (extras.extra_channels) {
      byId("inputs-title").textContent = "What the UNet gets besides x_t";
      byId("inputs-caption").textContent = extras.extra_channels.formula + ", the same at every step.";
      extras.extra_channels.pictures.forEach(function (item) { byId("inputs").appendChild(picture(item.src, item.label)); });
    }
  }
  function showPictures() {
    var m = Math.min(k, M), step = main.steps[m - 1], channels = data.extras.channels[m - 1];
    pictureSlots.x_t.src = step.x_t; pictureSlots.x0.src = step.x0;
    pictureSlots.ch_x_t.src = channels.x_t; pictureSlots.ch_x0.src = channels.x0;
    if (data.extras.blend) {
      pictureSlots.blend_background.src = data.extras.blend[m - 1].background;
      pictureSlots.blend_mask.src = data.extras.blend[m - 1].mask;
      pictureSlots.blend_blended.src = step.x_t;
    }
  }

  // ------------------------------------------------------------ the readout and the notes
  function showReadout() {
    var s = main.steps[Math.min(k, M) - 1];
    byId("readout").innerHTML = "";
    var line = byId("readout");
    line.appendChild(make("b", {}, "step " + k + " / " + N));
    if (k > M) line.appendChild(document.createTextNode("  ·  this run finished at step " + M + ", shown below"));
    line.appendChild(document.createTextNode("  ·  t " + fmt(s.timestep) + "  ·  σ " + fmt(s.sigma, 4) +
      (s.alpha_cumprod === null ? "" : "  ·  ᾱ " + fmt(s.alpha_cumprod, 4)) + "  ·  guidance " +
      fmt(s.guidance_scale) + "  ·  " + s.scheduler + (s.nonfinite ? "  ·  NaN/Inf in " + s.nonfinite : "")));
    byId("step").value = k;
    byId("step").setAttribute("aria-valuetext", "step " + k + " of " + N);
  }
  function claimItem(claim) {
    var li = make("li");
    li.appendChild(make("span", {class: claim.passed ? "pass" : "fail"}, claim.passed ? "✓ pass " : "✗ FAIL "));
    li.appendChild(document.createTextNode("step " + claim.step + ": " + claim.claim + " — " + claim.measured +
      (claim.say ? " (" + claim.say + ")" : "")));
    return li;
  }
  function notesAt(n) {  // the notes shown at step n: those of the last event at or before it, as in the TUI
    var shown = data.notes.filter(function (note) { return note.at_step <= n; });
    if (!shown.length) return [];
    var last = shown[shown.length - 1].at_step;
    return shown.filter(function (note) { return note.at_step === last; });
  }
  function describeNote(note) {
    return (note.change ? note.change + (note.note ? ". " : "") : "") + note.note;
  }
  function showNote() {
    var box = byId("note-now"), now = notesAt(k);
    box.innerHTML = "";
    if (!now.length) {
      box.appendChild(make("p", {class: "muted"}, data.notes.length ? "No note yet: the first comes at step " +
        Math.max(1, data.notes[0].at_step) + "." : "This run has no notes."));
    }
    now.forEach(function (note) {
      box.appendChild(make("p", {}, (note.at_step ? "After step " + note.at_step + ": " : "From the start: ") +
        describeNote(note)));
      if (note.claims.length) {
        var list = make("ul", {class: "claims"});
        note.claims.forEach(function (claim) { list.appendChild(claimItem(claim)); });
        box.appendChild(list);
      }
    });
    Array.prototype.forEach.call(byId("notes").children, function (li) {
      li.classList.toggle("current", now.indexOf(data.notes[Number(li.dataset.index)]) >= 0);
    });
  }
  function buildNotes() {
    var list = byId("notes");
    if (!data.notes.length) list.appendChild(make("li", {class: "muted"}, "This run has no notes or edits."));
    data.notes.forEach(function (note, index) {
      var li = make("li", {"data-index": index});
      var go = make("button", {type: "button"}, note.at_step ? "after step " + note.at_step : "from the start");
      go.addEventListener("click", function () { setStep(Math.max(1, note.at_step)); });
      li.appendChild(go);
      li.appendChild(document.createTextNode(": " + describeNote(note) + (note.applied ? "" : " (not reached)")));
      if (note.claims.length) {
        var claims = make("ul", {class: "claims"});
        note.claims.forEach(function (claim) { claims.appendChild(claimItem(claim)); });
        li.appendChild(claims);
      }
      list.appendChild(li);
    });
  }

  // ------------------------------------------------------------ the compared runs
  var runCards = [];
  function buildRuns() {
    var box = byId("runs");
    if (!box) return;
    runs.forEach(function (run) {
      var card = make("div", {class: "run"});
      card.appendChild(make("h3", {}, run.letter + ": " + run.label));
      var status = make("div", {class: "muted"}), pics = make("div", {class: "pics"}), numbers = make("div");
      var first = run.steps[0] || {x_t: "", x0: ""}, xt = picture(first.x_t, "x_t"), x0 = picture(first.x0, "x0-hat");
      pics.appendChild(xt); pics.appendChild(x0);
      card.appendChild(status); card.appendChild(pics); card.appendChild(numbers);
      box.appendChild(card);
      runCards.push({run: run, status: status, numbers: numbers, xt: xt.querySelector("img"), x0: x0.querySelector("img")});
    });
  }
  function showRuns() {
    runCards.forEach(function (card) {
      var run = card.run, n = Math.min(k, run.steps.length), s = stepOf(run, k);
      if (!s) { card.status.textContent = "no step ran: " + (run.stopped || "stopped before step 1"); return; }
      card.status.textContent = "step " + n + "/" + run.total_steps + " · t " + fmt(s.timestep) + " · σ " +
        fmt(s.sigma, 4) + " · " + s.scheduler + (k > run.steps.length ? " · finished at step " + n : "") +
        (run.stopped && k >= run.steps.length ? " · stopped: NaN/Inf" : "");
      card.numbers.textContent = "s " + fmt(s.guidance_scale) + " · " + data.labels.guidance + " rms " +
        fmt(s.rms_guidance, 3) + " · angle(u,t) " + fmt(s.angle, 3) + "°";
      card.xt.src = s.x_t; card.x0.src = s.x0;
    });
  }

  // ------------------------------------------------------------ attention
  var attention = data.attention, attentionBytes = null, x0Pictures = {};
  function heatColour(v) {  // the ramp the TUI and attention.png use
    var stops = attention.heat_stops;
    for (var i = 1; i < stops.length; i++) {
      if (v <= stops[i][0]) {
        var a = stops[i - 1], b = stops[i], f = (v - a[0]) / (b[0] - a[0]);
        return [0, 1, 2].map(function (c) { return Math.round(a[1][c] + f * (b[1][c] - a[1][c])); });
      }
    }
    return stops[stops.length - 1][1];
  }
  function buildAttention() {
    if (!attention) return;
    var raw = atob(attention.maps);
    attentionBytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) attentionBytes[i] = raw.charCodeAt(i);
    var bar = byId("tokens");
    token = Math.min(attention.tokens.length - 1, 2);  // the first word after <start> and "a"
    attention.tokens.forEach(function (label, index) {
      var button = make("button", {type: "button", "aria-pressed": String(index === token)}, label);
      button.addEventListener("click", function () {
        token = index;
        Array.prototype.forEach.call(bar.children, function (b, i) { b.setAttribute("aria-pressed", String(i === index)); });
        showAttention();
      });
      bar.appendChild(button);
    });
  }
  function showAttention() {
    if (!attention) return;
    var canvas = byId("attention"), context = canvas.getContext("2d"), step = Math.min(k, M);
    var h = attention.height, w = attention.width, tokens = attention.tokens.length;
    var image = x0Pictures[step];
    if (!image) {
      image = x0Pictures[step] = new Image();
      image.onload = function () { if (Math.min(k, M) === step) showAttention(); };
      image.src = main.steps[step - 1].x0;
      if (!image.complete) return;
    }
    var heat = document.createElement("canvas");
    heat.width = w; heat.height = h;
    var cells = heat.getContext("2d").createImageData(w, h), offset = ((step - 1) * tokens + token) * h * w;
    for (var p = 0; p < h * w; p++) {
      var rgb = heatColour(attentionBytes[offset + p] / 255);
      cells.data.set([rgb[0], rgb[1], rgb[2], 153], 4 * p);  // 60 % heat over the picture, as in the TUI
    }
    heat.getContext("2d").putImageData(cells, 0, 0);
    context.imageSmoothingEnabled = false;
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.filter = "grayscale(1)";  // the picture in grey under the map, as in the TUI: no colour of the map
    context.drawImage(image, 0, 0, canvas.width, canvas.height);  // can be taken for the picture's own
    context.filter = "none";
    context.drawImage(heat, 0, 0, canvas.width, canvas.height);
    var share = attention.shares[step - 1][token], area = attention.shape_share[step - 1];
    var label = attention.tokens[token];
    byId("attention-caption").textContent = share === null ? label : "'" + label + "' at step " + step + ": " +
      Math.round(100 * share) + "% of its attention mass on the shape, which covers " +
      Math.round(100 * (area || 0)) + "% of the picture" + (area ? " (" + (share / area).toFixed(2) +
      "x an even spread)." : ".");
  }

  // ------------------------------------------------------------ plots (SVG, drawn at the box's own width)
  var SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, parent) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (parent) parent.appendChild(node);
    return node;
  }
  function niceTicks(low, high, count) {
    var span = high - low || Math.abs(high) || 1, raw = span / count, power = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 5, 10].map(function (m) { return m * power; }).find(function (s) { return s >= raw; });
    var ticks = [];
    for (var v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    return ticks;
  }
  function logTicks(e0, e1) {  // powers of ten inside [10^e0, 10^e1]; the ends when fewer than two
    var ticks = [];
    for (var e = Math.ceil(e0 - 1e-9); e <= e1 + 1e-9; e++) ticks.push(Math.pow(10, e));
    if (ticks.length < 2) ticks = [Math.pow(10, e0), Math.pow(10, e1)];
    return ticks;
  }
  function plot(boxId, spec) {
    var box = byId(boxId);
    if (!box) return;
    var series = spec.series.filter(function (s) { return s.values.some(function (v) { return v !== null; }); });
    if (!series.length) { box.style.display = "none"; return; }
    var legend = make("div", {class: "legend"}), holder = make("div"), tip = make("div", {class: "tip"});
    box.appendChild(make("div", {}, spec.title));
    box.appendChild(holder); box.appendChild(legend); box.appendChild(tip);
    series.forEach(function (s, i) {
      var item = make("span"), key = svg("svg", {width: 34, height: 14, "aria-hidden": "true"});
      svg("line", {x1: 1, y1: 7, x2: 33, y2: 7, stroke: COLOURS[i % 8], "stroke-width": 3,
        "stroke-dasharray": DASHES[i % 8]}, key);
      item.appendChild(key); item.appendChild(document.createTextNode(" " + s.label));
      legend.appendChild(item);
    });
    var state = {box: box, holder: holder, tip: tip, series: series, spec: spec};
    plots.push(state);
    draw(state);
  }
  function draw(state) {
    var spec = state.spec, series = state.series, width = Math.max(280, state.holder.clientWidth || 320);
    var height = Math.round(Math.min(320, Math.max(200, width * 0.45)));
    var left = 64, right = 12, top = 10, bottom = 44;
    var values = [];
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && (!spec.log || v > 0)) values.push(v); }); });
    var low = Math.min.apply(null, values), high = Math.max.apply(null, values);
    if (spec.zero && low > 0) low = 0;
    var f = spec.log ? Math.log10 : function (v) { return v; };
    var y0 = f(low), y1 = f(high);
    if (y1 - y0 < 1e-12) { y0 -= 1; y1 += 1; }
    var pad = (y1 - y0) * 0.06;  // room above and below the highest and lowest points
    y1 += pad; if (!spec.zero || spec.log) y0 -= pad;
    var steps = Math.max.apply(null, series.map(function (s) { return s.values.length; }));
    var x = function (n) { return left + (steps > 1 ? (n - 1) / (steps - 1) : 0.5) * (width - left - right); };
    var y = function (v) { return top + (1 - (f(v) - y0) / (y1 - y0)) * (height - top - bottom); };
    state.holder.innerHTML = "";
    var root = svg("svg", {viewBox: "0 0 " + width + " " + height, width: width, height: height,
      role: "img", "aria-label": spec.title}, state.holder);
    var yTicks = spec.log ? logTicks(y0, y1) : niceTicks(low, high, 4);
    yTicks.forEach(function (v) {
      svg("line", {x1: left, x2: width - right, y1: y(v), y2: y(v), stroke: "#d0d0d0"}, root);
      svg("text", {x: left - 6, y: y(v) + 5, "text-anchor": "end"}, root).textContent = fmt(v, 3);
    });
    niceTicks(1, steps, Math.min(steps, Math.max(2, Math.floor(width / 70)))).forEach(function (n) {
      if (n < 1 || n !== Math.round(n)) return;
      svg("text", {x: x(n), y: height - bottom + 20, "text-anchor": "middle"}, root).textContent = n;
    });
    svg("text", {x: left + (width - left - right) / 2, y: height - 4, "text-anchor": "middle"}, root).textContent =
      "step";
    series.forEach(function (s, i) {
      var points = [];
      s.values.forEach(function (v, n) { if (v !== null && (!spec.log || v > 0)) points.push(x(n + 1) + "," + y(v)); });
      svg("polyline", {points: points.join(" "), fill: "none", stroke: COLOURS[i % 8], "stroke-width": 2.5,
        "stroke-dasharray": DASHES[i % 8]}, root);
      if (points.length <= 60) {
        points.forEach(function (p) {
          var xy = p.split(",");
          svg("circle", {cx: xy[0], cy: xy[1], r: 3, fill: COLOURS[i % 8]}, root);
        });
      }
    });
    state.cursor = svg("line", {y1: top, y2: height - bottom, stroke: "#000", "stroke-width": 2}, root);
    state.x = x; state.steps = steps; state.left = left; state.right = right; state.width = width;
    moveCursor(state);
    var pick = function (event) {
      var rect = root.getBoundingClientRect(), px = (event.clientX - rect.left) * width / rect.width;
      return Math.max(1, Math.min(steps, Math.round(1 + (px - left) / (width - left - right) * (steps - 1))));
    };
    root.addEventListener("pointermove", function (event) { showTip(state, pick(event), event); });
    root.addEventListener("pointerleave", function () { state.tip.style.display = "none"; });
    root.addEventListener("click", function (event) { setStep(pick(event)); });
  }
  function showTip(state, n, event) {
    var tip = state.tip, rect = state.box.getBoundingClientRect();
    tip.innerHTML = "";
    tip.appendChild(make("b", {}, "step " + n));
    state.series.forEach(function (s, i) {
      var line = make("div"), swatch = make("span", {style: "color:" + COLOURS[i % 8]}, "■ ");
      line.appendChild(swatch);
      line.appendChild(document.createTextNode((s.short || s.label) + ": " +
        fmt(s.values[n - 1] === undefined ? null : s.values[n - 1], 4)));
      tip.appendChild(line);
    });
    tip.style.display = "block";
    var px = event.clientX - rect.left, py = event.clientY - rect.top;
    tip.style.left = Math.max(0, Math.min(px + 12, rect.width - tip.offsetWidth)) + "px";
    tip.style.top = Math.max(0, py - tip.offsetHeight - 12) + "px";
  }
  function moveCursor(state) {
    if (!state.cursor) return;
    var at = state.x(Math.min(k, state.steps));
    state.cursor.setAttribute("x1", at); state.cursor.setAttribute("x2", at);
  }
  function column(run, name) { return run.steps.map(function (s) { return s[name]; }); }
  function perRun(name) {  // one series per run, named as the compare view names the run
    return runs.map(function (run) {
      var label = run.letter + ": " + run.label;
      return {label: label, short: label.length > 28 ? label.slice(0, 27) + "…" : label, values: column(run, name)};
    });
  }
  function buildPlots() {
    var L = data.labels;
    plot("norms", {title: "RMS per element of the UNet's two predictions, their difference and the guided one",
      zero: true, series: [["rms_uncond", L.uncond], ["rms_text", L.text], ["rms_guidance", L.guidance],
        ["rms_noise_pred", L.noise_pred]].map(function (p) { return {label: p[1], values: column(main, p[0])}; })});
    plot("angle", {title: "The angle between the two predictions (degrees)", zero: true,
      series: perRun("angle")});
    plot("sigma", {title: "σ_t: the noise level at each step (log scale)", log: true,
      series: perRun("sigma")});
    plot("abar", {title: "ᾱ_t: the share of the signal kept", zero: true,
      series: perRun("alpha_cumprod")});
  }

  // ------------------------------------------------------------ the step control
  function setStep(n) {
    k = Math.max(1, Math.min(N, n));
    showReadout(); showPictures(); showNote(); showRuns(); showAttention();
    plots.forEach(moveCursor);
  }
  function play() {
    if (timer) { clearInterval(timer); timer = null; }
    else {
      if (k >= N) setStep(1);
      timer = setInterval(function () {
        if (k >= N) { play(); return; }
        setStep(k + 1);
      }, 500);
    }
    byId("play").textContent = timer ? "⏸ pause" : "▶ play";
    byId("play").setAttribute("aria-label", timer ? "pause" : "play");
  }
  byId("step").addEventListener("input", function (event) { setStep(Number(event.target.value)); });
  byId("prev").addEventListener("click", function () { setStep(k - 1); });
  byId("next").addEventListener("click", function () { setStep(k + 1); });
  byId("play").addEventListener("click", play);
  document.addEventListener("keydown", function (event) {
    var tag = event.target.tagName;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.target.id === "step" && /Arrow|Home|End|Page/.test(event.key)) return;  // the slider moves itself
    if (event.key === "ArrowRight") setStep(k + 1);
    else if (event.key === "ArrowLeft") setStep(k - 1);
    else if (event.key === "Home") setStep(1);
    else if (event.key === "End") setStep(N);
    else if ((event.key === " " || event.key === "p") && tag !== "BUTTON" && tag !== "INPUT") play();
    else return;
    event.preventDefault();
  });
  var redraw = null;
  window.addEventListener("resize", function () {
    clearTimeout(redraw);
    redraw = setTimeout(function () { plots.forEach(draw); }, 100);
  });

  buildPictures(); buildNotes(); buildRuns(); buildAttention(); buildPlots();
  setStep(1);
  if (window.performance && performance.mark) performance.mark("stepviz-ready");  // every view drawn (bench)
})();
