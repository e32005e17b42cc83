// The interactive graph view of torch2keras (inlined into a self-contained HTML page).
//
// Reads the graph from <script id="t2k-data" type="application/json">, groups the nodes in a
// tree of modules (by their module scopes), and lays out what is visible with a layered layout
// per expanded module (longest-path layers, barycentre ordering, lanes for long edges). A
// collapsed module is one box; an expanded one a frame around its own layout. Pan (drag), zoom
// (wheel), search (op, module, source), a click on a node shows its details.
(function () {
  "use strict";
  const CH = 7.3, LH = 15, PAD = 7, HGAP = 22, VGAP = 34, GPAD = 12, GHEAD = 24, LANE = 8;
  const SVGNS = "http://www.w3.org/2000/svg";
  const DATA = JSON.parse(document.getElementById("t2k-data").textContent);
  const FILL = Object.fromEntries(DATA.legend.map(([s, , fill]) => [s, fill]));
  const BAD = ["unsupported", "first", "mismatch"];
  const svg = document.getElementById("t2k-svg");
  const viewport = document.getElementById("t2k-viewport");
  const details = document.getElementById("t2k-details");
  const detailBody = document.getElementById("t2k-detail-body");
  const results = document.getElementById("t2k-results");
  const search = document.getElementById("t2k-search");

  // ---------------------------------------------------------------- model: nodes, module tree, edges
  const nodes = DATA.nodes;
  const byId = new Map();
  nodes.forEach((n, i) => { n.order = i; n.kind = "node"; n.uid = "n" + n.id; byId.set(n.id, n); });
  const root = newGroup("", "", "", null, 0);
  const groups = new Map([["", root]]);

  function newGroup(key, path, type, parent, order) {
    const name = parent && parent.path && path.startsWith(parent.path + ".") ? path.slice(parent.path.length + 1) : path;
    return { kind: "group", key, uid: "g" + key, path, name, type, parent, order, depth: parent ? parent.depth + 1 : 0,
             children: [], nodes: [], count: 0, relayouts: 0, bad: "", unsupported: 0 };
  }

  for (const n of nodes) {
    let parent = root;
    n.chain = [];
    for (const [path, type] of n.scopes) {
      const key = parent.key + "/" + path;  // a module called from two places: two groups
      let g = groups.get(key);
      if (!g) {
        g = newGroup(key, path, type, parent, n.order);
        groups.set(key, g);
        parent.children.push(g);
      }
      n.chain.push(g);
      parent = g;
    }
    n.group = parent;
    parent.nodes.push(n);
    for (const g of [root, ...n.chain]) {
      g.count += 1;
      if (n.op === "relayout") g.relayouts += 1;
      if (n.status === "unsupported") g.unsupported += 1;
      if (BAD.includes(n.status) && (!g.bad || BAD.indexOf(n.status) < BAD.indexOf(g.bad))) g.bad = n.status;
    }
  }

  // a module holding a single node shows as that node (its details name the module)
  for (const g of groups.values()) {
    if (g === root || g.count !== 1 || g.parent.count === 1) continue;
    g.parent.children = g.parent.children.filter((c) => c !== g);
    const n = nodes.find((x) => x.chain.includes(g));
    n.chain = n.chain.slice(0, n.chain.indexOf(g));
    n.group.nodes = n.group.nodes.filter((x) => x !== n);
    n.group = g.parent;
    g.parent.nodes.push(n);
  }
  for (const [key, g] of groups) if (g !== root && g.count === 1) groups.delete(key);

  // each edge is laid out in the deepest module holding both ends, between the units (direct
  // child nodes or modules) of that module that hold them
  const edges = [];
  for (const v of nodes) {
    for (const id of v.inputs) {
      const u = byId.get(id);
      if (!u) continue;
      let k = 0;
      while (k < u.chain.length && k < v.chain.length && u.chain[k] === v.chain[k]) k++;
      const level = k ? u.chain[k - 1] : root;
      edges.push({ u, v, level, a: k < u.chain.length ? u.chain[k] : u, b: k < v.chain.length ? v.chain[k] : v });
    }
  }

  // ---------------------------------------------------------------- state
  const expanded = new Set([""]);
  let selected = null, matches = [], matchAt = -1, matchSet = new Set();
  const view = { x: 0, y: 0, scale: 1 };

  function visible(n) {  // the box that shows node n: itself, or its outermost collapsed module
    for (const g of n.chain) if (!expanded.has(g.key)) return g;
    return n;
  }

  // ---------------------------------------------------------------- sizes
  function text(s) { return String(s).length * CH; }

  function nodeLines(n) {
    const lines = [n.label];
    if (n.types.length) lines.push(n.types[0]);
    if (n.note) lines.push(n.note);
    if (n.max_error !== null && n.max_error !== undefined) lines.push("max |err| " + n.max_error.toExponential(2));
    if (n.status === "unsupported") lines.push("no lowering: " + n.source_op);
    return lines;
  }

  function groupLines(g) {
    const lines = [g.name + (g.type ? " (" + g.type + ")" : "")];
    let info = g.count + (g.count === 1 ? " op" : " ops");
    if (g.relayouts) info += ", " + g.relayouts + " transpose" + (g.relayouts === 1 ? "" : "s");
    lines.push(info);
    if (g.unsupported) lines.push(g.unsupported + " without lowering");
    else if (g.bad) lines.push(g.bad === "first" ? "first mismatch inside" : "mismatch inside");
    return lines;
  }

  function boxSize(lines) {
    return { w: Math.max(...lines.map(text)) + 2 * PAD, h: lines.length * LH + 2 * PAD - 3 };
  }

  // ---------------------------------------------------------------- layout of one expanded module
  function layoutGroup(g) {
    const units = [...g.nodes, ...g.children].sort((p, q) => p.order - q.order);
    for (const u of units) {
      if (u.kind === "node") { u.lines = nodeLines(u); Object.assign(u, boxSize(u.lines)); }
      else if (expanded.has(u.key)) { layoutGroup(u); u.open = true; }
      else { u.open = false; u.lines = groupLines(u); Object.assign(u, boxSize(u.lines)); u.w += 2 * CH; u.h += 4; }
    }
    if (!units.length) { g.rows = []; g.local = new Map(); g.w = 100; g.h = GHEAD + GPAD; return; }
    const pairs = new Map();
    for (const e of edges) {
      if (e.level !== g || e.a === e.b) continue;
      const key = e.a.uid + ">" + e.b.uid;
      if (!pairs.has(key)) pairs.set(key, { a: e.a, b: e.b, lane: [] });
    }
    const local = [...pairs.values()];
    const layer = new Map();
    const preds = new Map(units.map((u) => [u, []]));
    for (const e of local) if (e.a.order < e.b.order) preds.get(e.b).push(e.a);
    for (const u of units) layer.set(u, Math.max(-1, ...preds.get(u).map((p) => layer.get(p))) + 1);
    const rows = [];
    for (const u of units) (rows[layer.get(u)] = rows[layer.get(u)] || []).push(u);
    const up = new Map(units.map((u) => [u, []])), down = new Map(units.map((u) => [u, []]));
    for (const e of local) {  // long edges: one lane box per crossed layer
      if (e.a.order >= e.b.order) continue;
      let prev = e.a;
      for (let d = layer.get(e.a) + 1; d < layer.get(e.b); d++) {
        const lane = { kind: "lane", w: LANE, h: 0, order: e.b.order };
        rows[d].push(lane); layer.set(lane, d); up.set(lane, []); down.set(lane, []);
        up.get(lane).push(prev); down.get(prev).push(lane); e.lane.push(lane); prev = lane;
      }
      up.get(e.b).push(prev); down.get(prev).push(e.b);
    }
    orderRows(rows, up, down);
    placeRows(rows, up, down);
    const minX = Math.min(...units.map((u) => u.rx));
    let maxX = 0, y = GHEAD;
    for (const row of rows) {
      const h = Math.max(...row.map((u) => u.h));
      for (const u of row) {
        u.rx += GPAD - minX; u.ry = y;
        if (u.kind === "lane") u.h = h;
        maxX = Math.max(maxX, u.rx + u.w);
      }
      y += h + VGAP;
    }
    g.local = pairs;
    g.rows = rows;
    g.lines = [g.name + (g.type ? " (" + g.type + ")" : "")];
    g.w = Math.max(maxX + GPAD, text(g.lines[0]) + 40);
    g.h = y - VGAP + GPAD;
  }

  function orderRows(rows, up, down) {
    const pos = new Map();
    rows.forEach((row) => row.forEach((u, i) => pos.set(u, i)));
    const sweep = (indices, nb) => {
      for (const d of indices) {
        const row = rows[d];
        const key = new Map(row.map((u) => {
          const ns = nb.get(u);
          return [u, ns.length ? ns.reduce((s, n) => s + pos.get(n), 0) / ns.length : pos.get(u)];
        }));
        row.sort((p, q) => key.get(p) - key.get(q));
        row.forEach((u, i) => pos.set(u, i));
      }
    };
    const downIdx = rows.map((_, d) => d).slice(1), upIdx = rows.map((_, d) => d).reverse().slice(1);
    sweep(downIdx, up); sweep(upIdx, down); sweep(downIdx, up);
  }

  function placeRows(rows, up, down) {
    for (const row of rows) {  // packed start
      let x = 0;
      for (const u of row) { u.rx = x; x += u.w + HGAP; }
    }
    const center = (u) => u.rx + u.w / 2;
    const pull = (row, nb) => {
      const want = row.map((u) => {
        const ns = nb.get(u);
        return ns.length ? ns.reduce((s, n) => s + center(n), 0) / ns.length - u.w / 2 : u.rx;
      });
      const left = want.slice(), right = want.slice();
      for (let i = 1; i < row.length; i++) left[i] = Math.max(left[i], left[i - 1] + row[i - 1].w + HGAP);
      for (let i = row.length - 2; i >= 0; i--) right[i] = Math.min(right[i], right[i + 1] - row[i].w - HGAP);
      row.forEach((u, i) => { u.rx = (left[i] + right[i]) / 2; });
    };
    for (let it = 0; it < 3; it++) {
      for (let d = 1; d < rows.length; d++) pull(rows[d], up);
      for (let d = rows.length - 2; d >= 0; d--) pull(rows[d], down);
    }
    for (let d = 1; d < rows.length; d++) pull(rows[d], up);
  }

  function place(g, ox, oy) {  // absolute coordinates
    g.ax = ox; g.ay = oy;
    for (const row of g.rows) for (const u of row) {
      u.ax = ox + u.rx; u.ay = oy + u.ry;
      if (u.kind === "group" && u.open) place(u, u.ax, u.ay);
    }
  }

  // ---------------------------------------------------------------- drawing
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }

  function drawBox(u, out) {
    const isNode = u.kind === "node";
    const hit = matchSet.has(u);
    const status = isNode ? u.status : (u.unsupported ? "unsupported" : u.bad);
    const cls = isNode ? "node op-" + u.op.replace(/\W/g, "_") + " status-" + u.status
                       : "group collapsed" + (status ? " status-" + status : "");
    const attr = isNode ? 'data-node="' + esc(u.name) + '" data-id="' + u.id + '"'
                        : 'data-group="' + esc(u.path) + '" data-key="' + esc(u.key) + '"';
    const fill = isNode ? (FILL[u.status] || "#fff") : "#e9eef6";
    const dark = isNode && (u.status === "first" || u.status === "unsupported");
    out.push('<g class="' + cls + (u === selected ? " selected" : "") + (hit ? " match" : "") +
             '" ' + attr + '><title>' + esc(isNode ? u.text || u.label : u.path) + "</title>");
    out.push('<rect x="' + u.ax + '" y="' + u.ay + '" width="' + u.w + '" height="' + u.h + '" rx="' +
             (isNode ? 4 : 7) + '" fill="' + fill + '"' + (!isNode && status ? ' stroke="' + (FILL[status] || "#c33") +
             '" stroke-width="3"' : "") + "/>");
    if (!isNode) out.push('<rect class="stack" x="' + (u.ax + 3) + '" y="' + (u.ay + u.h) + '" width="' + (u.w - 6) +
                          '" height="3"/>');
    u.lines.forEach((t, i) => {
      out.push('<text x="' + (u.ax + PAD) + '" y="' + (u.ay + PAD + 10 + i * LH) + '"' + (i === 0 ? ' class="head"' : "") +
               (dark ? ' fill="#fff"' : "") + ">" + (i === 0 && !isNode ? "&#9656; " : "") + esc(t) + "</text>");
    });
    out.push("</g>");
  }

  function drawGroup(g, out) {
    if (g !== root) {
      out.push('<g class="group open' + (g.bad ? " status-" + (g.unsupported ? "unsupported" : g.bad) : "") +
               (matchSet.has(g) ? " match" : "") + '" data-group="' + esc(g.path) + '" data-key="' + esc(g.key) + '">' +
               '<title>' + esc(g.path) + '</title><rect class="frame" x="' + g.ax + '" y="' + g.ay + '" width="' + g.w +
               '" height="' + g.h + '" rx="8"/><rect class="hdr" x="' + g.ax + '" y="' + g.ay + '" width="' + g.w +
               '" height="' + (GHEAD - 4) + '" rx="8"/><text class="head" x="' + (g.ax + 8) + '" y="' + (g.ay + 16) +
               '">&#9662; ' + esc(g.lines[0]) + "</text></g>");
    }
    for (const row of g.rows) for (const u of row) {
      if (u.kind === "group" && u.open) drawGroup(u, out);
      else if (u.kind !== "lane") drawBox(u, out);
    }
  }

  function edgePath(a, b, lane) {
    const pts = [[a.ax + a.w / 2, a.ay + a.h]];
    for (const l of lane) pts.push([l.ax + l.w / 2, l.ay], [l.ax + l.w / 2, l.ay + l.h]);
    pts.push([b.ax + b.w / 2, b.ay]);
    let d = "M" + pts[0][0].toFixed(1) + " " + pts[0][1].toFixed(1);
    for (let i = 1; i < pts.length; i++) {
      const [x0, y0] = pts[i - 1], [x1, y1] = pts[i];
      if (x0 === x1) { d += " L" + x1.toFixed(1) + " " + y1.toFixed(1); continue; }
      const m = Math.abs(y1 - y0) / 2 + 10;
      d += " C" + x0.toFixed(1) + " " + (y0 + m).toFixed(1) + " " + x1.toFixed(1) + " " + (y1 - m).toFixed(1) + " " +
           x1.toFixed(1) + " " + y1.toFixed(1);
    }
    return d;
  }

  function drawEdges(out) {
    const seen = new Set();
    for (const e of edges) {
      const a = visible(e.u), b = visible(e.v);
      if (a === b || !isShown(e.level)) continue;
      const key = a.uid + ">" + b.uid;
      if (seen.has(key)) continue;
      seen.add(key);
      const route = e.level.local.get(e.a.uid + ">" + e.b.uid);
      const hot = selected && (selected === e.u || selected === e.v);
      out.push('<path class="edge' + (hot ? " hot" : "") + '" d="' + edgePath(a, b, route ? route.lane : []) + '"/>');
    }
  }

  function isShown(g) {  // an expanded module whose enclosing modules are all expanded
    for (let p = g; p; p = p.parent) if (!expanded.has(p.key)) return false;
    return true;
  }

  function render() {
    layoutGroup(root);
    place(root, 0, 0);
    const boxes = [], lines = [];
    drawGroup(root, boxes);
    drawEdges(lines);
    viewport.innerHTML = '<g class="edges">' + lines.join("") + "</g>" + boxes.join("");
    applyView();
    updateCounts();
  }

  // ---------------------------------------------------------------- pan and zoom
  function applyView() {
    viewport.setAttribute("transform", "translate(" + view.x + "," + view.y + ") scale(" + view.scale + ")");
  }

  function fit(maxScale) {
    const r = svg.getBoundingClientRect();
    const s = Math.min(maxScale === undefined ? 1 : maxScale, (r.width - 24) / root.w, (r.height - 24) / (root.h - GHEAD));
    view.scale = Math.max(s, 0.05);
    view.x = (r.width - root.w * view.scale) / 2;
    view.y = 12 - GHEAD * view.scale + Math.max(0, (r.height - 24 - (root.h - GHEAD) * view.scale) / 2);
    applyView();
  }

  function centerOn(u) {
    const r = svg.getBoundingClientRect();
    view.scale = Math.max(view.scale, 0.8);
    view.x = r.width / 2 - (u.ax + u.w / 2) * view.scale;
    view.y = r.height / 2 - (u.ay + u.h / 2) * view.scale;
    applyView();
  }

  let drag = null;
  svg.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y, moved: false }; });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    view.x = drag.vx + dx; view.y = drag.vy + dy;
    applyView();
  });
  window.addEventListener("mouseup", () => { setTimeout(() => { drag = null; }, 0); });
  svg.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = svg.getBoundingClientRect();
    const px = ev.clientX - r.left, py = ev.clientY - r.top;
    const k = Math.exp(-ev.deltaY * 0.0015);
    const s = Math.min(4, Math.max(0.05, view.scale * k));
    view.x = px - (px - view.x) * (s / view.scale);
    view.y = py - (py - view.y) * (s / view.scale);
    view.scale = s;
    applyView();
  }, { passive: false });

  // ---------------------------------------------------------------- clicks: toggle modules, show details
  svg.addEventListener("click", (ev) => {
    if (drag && drag.moved) return;
    const el = ev.target.closest("[data-node],[data-group]");
    if (!el) return;
    if (el.hasAttribute("data-node")) { select(byId.get(Number(el.getAttribute("data-id")))); return; }
    const g = groups.get(el.getAttribute("data-key"));
    if (g) toggle(g);
  });

  function toggle(g) {
    if (expanded.has(g.key)) expanded.delete(g.key); else expanded.add(g.key);
    render();
  }

  function select(n) {
    selected = n;
    render();
    showDetails(n);
  }

  function row(k, v, cls) {
    return "<tr><th>" + esc(k) + "</th><td" + (cls ? ' class="' + cls + '"' : "") + ">" + esc(v) + "</td></tr>";
  }

  function showDetails(n) {
    const h = ['<h2>%' + esc(n.name) + " = " + esc(n.op) + "</h2><table>"];
    if (n.source_op) h.push(row("from", n.source_op));
    h.push(row("module", n.scopes.length ? n.scopes.map(([p, t]) => p + " (" + t + ")").join(" › ") : "<top>"));
    if (n.file) h.push(row("source", n.file + ":" + n.line, "source"));
    if (n.code) h.push(row("code", n.code, "code"));
    n.types.forEach((t, i) => h.push(row(n.types.length > 1 ? "result " + i : "type", t)));
    for (const [k, v] of n.attributes) h.push(row(k, v));
    if (n.inputs.length) h.push(row("inputs", n.inputs.map((i) => "%" + (byId.get(i) || { name: "?" }).name).join(", ")));
    h.push("</table>");
    if (n.error) h.push('<h3>vs PyTorch</h3><pre class="error status-' + esc(n.status) + '">' + esc(n.error) + "</pre>");
    if (n.stub) h.push('<h3>no lowering: a stub to fill</h3><pre class="stub">' + esc(n.stub) + "</pre>");
    if (n.text) h.push('<h3>IR</h3><pre>' + esc(n.text) + "</pre>");
    detailBody.innerHTML = h.join("");
    details.hidden = false;
  }

  // ---------------------------------------------------------------- search
  for (const n of nodes) {
    n.haystack = [n.name, n.op, n.source_op, ...n.scopes.map(([p, t]) => p + " " + t), n.file + ":" + n.line,
                  n.code, ...n.types].join("\n").toLowerCase();
  }

  function runSearch(q) {
    q = q.trim().toLowerCase();
    matches = q ? nodes.filter((n) => n.haystack.includes(q)) : [];
    matchAt = -1;
    const items = matches.slice(0, 200).map((n, i) => '<li data-match="' + i + '">%' + esc(n.name) + " <b>" + esc(n.op) +
      "</b> <span>" + esc(n.where) + "</span></li>");
    results.innerHTML = q ? '<div class="count">' + matches.length + " match" + (matches.length === 1 ? "" : "es") +
      "</div><ul>" + items.join("") + "</ul>" : "";
    matchSet = new Set(matches);
    for (const n of matches) for (const g of n.chain) matchSet.add(g);
    render();
  }

  function reveal(n) {
    for (const g of n.chain) expanded.add(g.key);
    select(n);
    centerOn(n);
  }

  search.addEventListener("input", () => runSearch(search.value));
  search.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    if (!matches.length) return;
    matchAt = (matchAt + 1) % matches.length;
    reveal(matches[matchAt]);
  });
  results.addEventListener("click", (ev) => {
    const li = ev.target.closest("[data-match]");
    if (li) reveal(matches[Number(li.getAttribute("data-match"))]);
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "/" && document.activeElement !== search) { ev.preventDefault(); search.focus(); }
    if (ev.key === "Escape") { details.hidden = true; selected = null; render(); }
  });

  // ---------------------------------------------------------------- toolbar
  function setDepth(depth) {
    expanded.clear();
    for (const g of groups.values()) if (g.depth < depth) expanded.add(g.key);
    render();
    fit();
  }
  document.getElementById("t2k-top").addEventListener("click", () => setDepth(1));
  document.getElementById("t2k-all").addEventListener("click", () => setDepth(Infinity));
  document.getElementById("t2k-fit").addEventListener("click", () => fit(4));
  document.getElementById("t2k-close").addEventListener("click", () => { details.hidden = true; });

  function updateCounts() {
    const shownNodes = nodes.filter((n) => visible(n) === n).length;
    const shownGroups = [...groups.values()].filter((g) => g !== root && isShown(g.parent) && !expanded.has(g.key)).length;
    document.getElementById("t2k-counts").textContent = shownNodes + " of " + nodes.length + " nodes shown, " +
      shownGroups + " collapsed modules";
  }

  // for tests and the console: the view's state
  window.torch2kerasView = {
    state: () => ({ scale: view.scale, width: root.w, height: root.h - GHEAD, nodes: nodes.length,
                    shownNodes: nodes.filter((n) => visible(n) === n).length, expanded: [...expanded] }),
    expand: (path) => { for (const g of groups.values()) if (g.path === path) expanded.add(g.key); render(); },
    collapse: (path) => { for (const g of groups.values()) if (g.path === path) expanded.delete(g.key); render(); },
  };

  setDepth(1);
})();
