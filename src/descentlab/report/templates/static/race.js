// descentlab report: the methods-race viewer, inlined into index.html at build time.
// Reads the JSON in #race-data and draws the chosen trajectories as SVG over the contour image.
(function () {
  var dataEl = document.getElementById("race-data");
  var root = document.getElementById("race");
  if (!dataEl || !root) { return; }
  var data = JSON.parse(dataEl.textContent);
  var names = Object.keys(data.functions);
  if (!names.length) { return; }
  var NS = "http" + "://www.w3.org/2000/svg";
  var W = 400, H = 400;
  var colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                "#bcbd22", "#7f7f7f"];
  var fnSel = document.getElementById("race-fn");
  var slider = document.getElementById("race-lr");
  var sliderLabel = document.getElementById("race-lr-label");
  var controls = document.getElementById("race-methods");
  var image = document.getElementById("race-image");
  var layer = document.getElementById("race-paths");
  var caption = document.getElementById("race-window");
  var state = {fn: names[0], on: {}};
  names.forEach(function (n) {
    var o = document.createElement("option"); o.value = n; o.textContent = n; fnSel.appendChild(o);
  });
  function lrs(f, m) {
    return Object.keys(f.runs[m]).sort(function (a, b) { return parseFloat(a) - parseFloat(b); });
  }
  function fmt(v) {
    if (typeof v !== "number") { return String(v); }
    return Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4 ? v.toExponential(2) : v.toPrecision(3);
  }
  function build() {
    var f = data.functions[state.fn];
    var methods = Object.keys(f.runs);
    if (!Object.keys(state.on).length) {
      var pick = methods.filter(function (m) { return ["gd", "heavy_ball", "adam"].indexOf(m) >= 0; });
      (pick.length ? pick : methods.slice(0, 3)).forEach(function (m) { state.on[m] = true; });
    }
    while (controls.firstChild) { controls.removeChild(controls.firstChild); }
    var n = 1;
    methods.forEach(function (m, i) {
      var grid = lrs(f, m); n = Math.max(n, grid.length);
      var row = document.createElement("label"); row.className = "race-row";
      var box = document.createElement("input"); box.type = "checkbox"; box.dataset.method = m;
      box.checked = !!state.on[m];
      box.addEventListener("change", function () { state.on[m] = box.checked; draw(); });
      var sw = document.createElement("span"); sw.className = "swatch";
      sw.style.background = colors[i % colors.length];
      var name = document.createElement("span"); name.className = "race-name"; name.textContent = f.labels[m] || m;
      var sel = document.createElement("select"); sel.dataset.method = m; sel.className = "race-lr-select";
      grid.forEach(function (lr) {
        var o = document.createElement("option"); o.value = lr; o.textContent = "lr " + lr; sel.appendChild(o);
      });
      sel.value = grid.indexOf(f.best[m]) >= 0 ? f.best[m] : grid[Math.floor((grid.length - 1) / 2)];
      sel.addEventListener("change", draw);
      var fin = document.createElement("span"); fin.className = "race-final"; fin.dataset.method = m;
      row.appendChild(box); row.appendChild(sw); row.appendChild(name); row.appendChild(sel); row.appendChild(fin);
      controls.appendChild(row);
    });
    slider.max = String(n - 1); slider.value = String(Math.floor((n - 1) / 2));
    image.setAttribute("href", f.image);
    var e = f.extent;
    caption.textContent = state.fn + ": x in [" + e[0] + ", " + e[1] + "], y in [" + e[2] + ", " + e[3] + "]";
    draw();
  }
  // The control of method m, matched on its data-method value (never spliced into a selector: a name may hold ' or ]).
  function byMethod(selector, m) {
    var found = null;
    controls.querySelectorAll(selector).forEach(function (el) {
      if (found === null && el.dataset.method === m) { found = el; }
    });
    return found;
  }
  function draw() {
    var f = data.functions[state.fn], e = f.extent;
    function px(p) {
      var x = (p[0] - e[0]) / (e[1] - e[0]) * W, y = (1 - (p[1] - e[2]) / (e[3] - e[2])) * H;
      x = Math.max(-W, Math.min(2 * W, x)); y = Math.max(-H, Math.min(2 * H, y));
      return x.toFixed(1) + "," + y.toFixed(1);
    }
    while (layer.firstChild) { layer.removeChild(layer.firstChild); }
    var methods = Object.keys(f.runs);
    methods.forEach(function (m, i) {
      var sel = byMethod("select", m), fin = byMethod("span.race-final", m);
      var lr = sel.value, pts = f.runs[m][lr] || [];
      var v = (f.final[m] || {})[lr];
      fin.textContent = v === undefined ? "" : "final f = " + fmt(v);
      if (!state.on[m] || pts.length < 2) { return; }
      var line = document.createElementNS(NS, "polyline");
      line.setAttribute("class", "traj-path"); line.dataset.method = m;
      line.setAttribute("points", pts.map(px).join(" "));
      line.setAttribute("stroke", colors[i % colors.length]);
      layer.appendChild(line);
      var end = pts[pts.length - 1].map(Number), c = px(end).split(",");
      var dot = document.createElementNS(NS, "circle");
      dot.setAttribute("cx", c[0]); dot.setAttribute("cy", c[1]); dot.setAttribute("r", "3.5");
      dot.setAttribute("fill", colors[i % colors.length]); layer.appendChild(dot);
    });
    if (f.start) {
      var s = px(f.start).split(",");
      var st = document.createElementNS(NS, "circle");
      st.setAttribute("cx", s[0]); st.setAttribute("cy", s[1]); st.setAttribute("r", "5");
      st.setAttribute("class", "race-start"); layer.appendChild(st);
    }
    root.dataset.paths = String(layer.querySelectorAll(".traj-path").length);
  }
  slider.addEventListener("input", function () {
    var k = parseInt(slider.value, 10);
    controls.querySelectorAll("select.race-lr-select").forEach(function (sel) {
      sel.selectedIndex = Math.min(k, sel.options.length - 1);
    });
    sliderLabel.textContent = "grid point " + (k + 1) + " of each method's lr grid";
    draw();
  });
  fnSel.addEventListener("change", function () { state.fn = fnSel.value; build(); });
  build();
})();
