// The Synod Explorer: draws a trace (docs/SIMULATOR.md, "Trace format") as a space-time
// diagram. Everything it needs is in this page; it makes no network request.
//
// The page holds one or two runs (`#synod-runs`, made by `synod explore`). Each run is a
// `Run` (the trace decoded: events, messages paired by id, vector clocks) drawn by a
// `Diagram` (an SVG of what is inside its time window, and an overview canvas). `app`
// holds what the controls set: the axis, the colours, the filters, the selected event.
'use strict';
(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const LANE = 44;          // height of a node's lane
  const TOP = 34;           // the axis and the chosen-marks track above the lanes
  const CLIENT_ROW = 11;    // height of a client's row of operations
  const LEFT = 58;          // room for the lanes' names
  const RIGHT = 12;
  const OVERVIEW = 36;      // height of the overview under each diagram
  const MAX_DOTS = 8000;    // beyond this many events in view, dots wait for a zoom
  const MAX_HEADS = 3000;   // beyond this many arrows in view, no arrowheads
  const KIND_COLOURS = {
    prepare: '#1f77b4', promise: '#17becf', accept: '#ff7f0e', accepted: '#d62728',
    chosen: '#2ca02c', commit: '#2ca02c', heartbeat: '#a0a0a0', nack: '#9467bd',
    learn: '#2ca02c',
  };

  const RAW = JSON.parse(document.getElementById('synod-runs').textContent);
  const $ = (id) => document.getElementById(id);
  const esc = (text) => String(text).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));

  /** A stable colour for any string (a ballot, a kind without its own colour). */
  function hashColour(text) {
    let h = 2166136261;
    for (let i = 0; i < text.length; i++) { h ^= text.charCodeAt(i); h = Math.imul(h, 16777619); }
    const hue = ((h >>> 0) % 360);
    return `hsl(${hue}, 65%, 42%)`;
  }

  /** A ballot as people read it: `round.node`, with a configuration epoch (kept in the
   *  round's upper 32 bits) written before it as `epoch:round.node`. */
  function ballot(text) {
    if (text == null) return text;
    const m = String(text).match(/^(\d+)\.(\d+)(.*)$/);
    if (!m) return text;
    const round = Number(m[1]), epoch = Math.floor(round / 2 ** 32);
    return epoch ? `${epoch}:${round - epoch * 2 ** 32}.${m[2]}${m[3]}` : text;
  }

  /** The first index in sorted `values` whose value is ≥ `x`. */
  function lowerBound(values, x) {
    let lo = 0, hi = values.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (values[mid] < x) lo = mid + 1; else hi = mid; }
    return lo;
  }

  // ---------------------------------------------------------------- the decoded trace

  class Run {
    constructor(raw) {
      this.raw = raw;
      this.nodes = raw.nodes;
      this.width = raw.nodes.length;
      this.clock = raw.events.clock;
      this.unit = raw.unit;
      const E = raw.events, S = raw.strings;
      const str = (i) => (i < 0 ? null : S[i]);
      const n = E.time.length;
      this.times = E.time;
      this.events = new Array(n);
      for (let i = 0; i < n; i++) {
        this.events[i] = {
          i, t: E.time[i], node: E.node[i], what: S[E.what[i]], id: E.id[i],
          message: str(E.message[i]), ballot: str(E.ballot[i]), slot: E.slot[i],
          peer: E.peer[i], detail: str(E.detail[i]), state: E.state[i],
        };
      }
      this.states = raw.states.map(([role, promised, vote, commit, applied]) => ({
        role: str(role), promised: str(promised), vote: str(vote),
        commit: commit < 0 ? null : commit, applied: applied < 0 ? null : applied,
      }));
      this.pairMessages();
      this.perNode = this.nodes.map(() => []);
      for (const e of this.events) this.perNode[e.node].push(e.i);
      this.chosen = this.events.filter((e) => e.what === 'chosen');
      this.ops = raw.ops;
      this.faults = raw.faults;
      this.clients = [...new Set(this.ops.map((o) => o.client))].sort((a, b) => a - b);
      const ends = [0, ...this.ops.map((o) => o.ret ?? o.call), ...this.faults.map((f) => f.end ?? f.start)];
      this.tMin = n ? this.events[0].t : 0;
      this.tMax = Math.max(n ? this.events[n - 1].t : 0, ...ends);
      this.messageKinds = [...new Set(this.arrows.map((a) => a.kind))].sort();
      this.localKinds = [...new Set(this.events.filter((e) => e.id < 0).map((e) => e.what))].sort();
    }

    /** Pairs each send with its deliveries (two for a duplicate), its drop, or neither. */
    pairMessages() {
      const messages = new Map();
      for (const e of this.events) {
        if (e.id < 0) continue;
        if (e.what === 'send') messages.set(e.id, { send: e, ends: [], drop: null });
        else if (e.what === 'deliver') messages.get(e.id)?.ends.push(e);
        else if (e.what === 'drop') { const m = messages.get(e.id); if (m) m.drop = e; }
      }
      const delays = [];
      this.arrows = [];
      for (const [id, m] of messages) {
        const base = { id, from: m.send, kind: m.send.message ?? '?', ballot: m.send.ballot, slot: m.send.slot };
        m.ends.forEach((to, k) => { this.arrows.push({ ...base, to, peer: to.node, end: 'deliver', dup: k > 0 }); delays.push(to.t - m.send.t); });
        if (m.drop) this.arrows.push({ ...base, to: null, peer: m.send.peer, end: 'lost', at: m.drop });
        if (!m.ends.length && !m.drop) this.arrows.push({ ...base, to: null, peer: m.send.peer, end: 'inflight' });
      }
      delays.sort((a, b) => a - b);
      this.halfDelay = Math.max(1, (delays[delays.length >> 1] ?? 2) / 2);
      this.messages = messages;
    }

    clockOf(i, k) { return this.clock[i * this.width + k]; }

    /** Whether event `a` happened before event `b`: `a`'s own entry is in `b`'s clock. */
    happenedBefore(a, b) {
      return a !== b && this.clockOf(a.i, a.node) <= this.clockOf(b.i, a.node);
    }

    /** Node `k`'s last event at or before event index `i` (or undefined). */
    lastEventOf(k, i) {
      const list = this.perNode[k];
      const at = lowerBound(list, i + 1) - 1;
      return at >= 0 ? this.events[list[at]] : undefined;
    }

    /** The index of the last event at or before time `t` (-1 if none). */
    lastIndexAt(t) { return lowerBound(this.times, t + 1) - 1; }
  }

  // ---------------------------------------------------------------- what the controls set

  const app = {
    axis: 'time', colour: 'kind', slot: null,
    hiddenNodes: new Set(), hiddenKinds: new Set(), hiddenLocal: new Set(),
    selected: null,          // { diagram, event } or { diagram, op }
    focused: null,           // the diagram the scrubber drives
    diagrams: [],
    timings: [],             // render times, for the browser test and BENCHMARKS.md
  };

  function parseSlot(text) {
    const m = text.trim().match(/^(\d+)(?:\s*-\s*(\d+))?$/);
    if (!m) return null;
    return { from: Number(m[1]), to: Number(m[2] ?? m[1]) };
  }
  const slotShown = (slot) => !app.slot || (slot >= app.slot.from && slot <= app.slot.to);

  function arrowShown(a) {
    return !app.hiddenKinds.has(a.kind) && slotShown(a.slot) &&
      !app.hiddenNodes.has(a.from.node) && !app.hiddenNodes.has(a.peer);
  }
  function eventShown(run, e) {
    if (app.hiddenNodes.has(e.node)) return false;
    if (e.id >= 0) {
      const m = run.messages.get(e.id);
      const kind = m ? m.send.message ?? '?' : e.message;
      return !app.hiddenKinds.has(kind) && slotShown(e.slot);
    }
    if (app.hiddenLocal.has(e.what)) return false;
    return e.slot < 0 || slotShown(e.slot);
  }
  function colourOf(a) {
    if (app.colour === 'ballot') return a.ballot ? hashColour(a.ballot) : '#999';
    return KIND_COLOURS[a.kind] ?? hashColour(a.kind);
  }

  // ---------------------------------------------------------------- one run's drawing

  class Diagram {
    constructor(run, index) {
      this.run = run;
      this.index = index;
      this.cursor = run.events.length - 1;   // the whole run shown, nothing faded
      this.section = document.createElement('section');
      this.section.className = 'run';
      this.section.dataset.run = index;
      this.title = document.createElement('h3');
      this.svg = document.createElementNS(SVG, 'svg');
      this.overview = document.createElement('canvas');
      this.section.append(this.title, this.svg, this.overview);
      $('runs').append(this.section);
      this.fit();
      this.listen();
    }

    /** The coordinate along the axis: virtual time, or the event's position in the run. */
    u(e) { return app.axis === 'time' ? e.t : e.i; }
    uOfTime(t) { return app.axis === 'time' ? t : lowerBound(this.run.times, t); }
    uMin() { return app.axis === 'time' ? this.run.tMin : 0; }
    uMax() { return app.axis === 'time' ? this.run.tMax : Math.max(1, this.run.events.length - 1); }

    fit() {
      const lo = this.uMin(), hi = this.uMax();
      const pad = Math.max(1, (hi - lo) * 0.01);
      this.u0 = lo - pad; this.u1 = hi + pad;
    }

    lanes() {
      const lanes = [];
      this.run.nodes.forEach((n, k) => { if (!app.hiddenNodes.has(k)) lanes.push(k); });
      const y = new Map(lanes.map((k, row) => [k, TOP + row * LANE + LANE / 2]));
      return { lanes, y };
    }

    plotWidth() { return Math.max(200, this.section.clientWidth - 2); }

    render() {
      const started = performance.now();
      const run = this.run, width = this.plotWidth(), plot = width - LEFT - RIGHT;
      const { lanes, y } = this.lanes();
      const lanesBottom = TOP + lanes.length * LANE;
      const clientsTop = lanesBottom + 6;
      const height = clientsTop + run.clients.length * CLIENT_ROW + 6;
      const u0 = this.u0, u1 = this.u1, scale = plot / (u1 - u0);
      const x = (u) => (LEFT + (u - u0) * scale).toFixed(1);
      const inView = (a, b) => Math.max(a, b) >= u0 && Math.min(a, b) <= u1;
      const sel = app.selected && app.selected.diagram === this && app.selected.event ? app.selected.event : null;
      const cut = this.cursor;
      const out = [];
      out.push('<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' +
        '<rect width="3" height="6" fill="#7a7aff"/></pattern>' +
        '<marker id="head" viewBox="0 0 6 6" refX="6" refY="3" markerWidth="6" markerHeight="6" orient="auto-start-reverse">' +
        '<path d="M0,0 L6,3 L0,6 z" fill="#555"/></marker>' +
        `<clipPath id="plot-${this.index}"><rect x="${LEFT}" y="0" width="${plot}" height="${height}"/></clipPath></defs>`);
      lanes.forEach((k, row) => {
        out.push(`<rect class="lane-bg${row % 2 ? ' odd' : ''}" x="0" y="${TOP + row * LANE}" width="${width}" height="${LANE}"/>`);
      });
      out.push(`<g clip-path="url(#plot-${this.index})">`);
      this.axis(out, x, plot, height);
      this.drawFaults(out, x, y, inView);
      this.drawChosen(out, x, lanesBottom, inView);
      const shown = this.drawArrows(out, x, y, inView, sel, cut);
      const dots = this.drawEvents(out, x, y, sel, cut);
      this.drawOps(out, x, clientsTop, inView);
      out.push('</g>');
      lanes.forEach((k, row) => {
        out.push(`<text class="lane-name" x="6" y="${TOP + row * LANE + LANE / 2 + 4}">${esc(run.nodes[k].name)}</text>`);
      });
      run.clients.forEach((c, row) => {
        out.push(`<text class="client-name" x="6" y="${clientsTop + row * CLIENT_ROW + 9}">client ${c}</text>`);
      });
      if (cut < run.events.length - 1) {
        const cx = x(this.u(run.events[cut]));
        out.push(`<line class="cursor" x1="${cx}" x2="${cx}" y1="${TOP - 6}" y2="${height}"/>`);
      }
      this.svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
      this.svg.setAttribute('height', height);
      this.svg.innerHTML = out.join('');
      this.title.innerHTML = `${esc(run.raw.title)} <small>(seed ${run.raw.seed}; ${run.events.length} events, ` +
        `${run.messages.size} messages, ${run.faults.length} faults, ${run.ops.length} operations; ${shown} arrows in view)</small>` +
        (dots === null ? '<span class="notice">too many events in view to draw their dots: zoom in</span>' : '');
      this.drawOverview(width);
      app.timings.push({ run: this.index, arrows: shown, dots, ms: performance.now() - started });
    }

    axis(out, x, plot, height) {
      const span = this.u1 - this.u0;
      const raw = span / Math.max(1, plot / 90);
      const pow = 10 ** Math.floor(Math.log10(raw));
      const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw);
      for (let u = Math.ceil(this.u0 / step) * step; u <= this.u1; u += step) {
        const px = x(u);
        out.push(`<line class="tick" x1="${px}" x2="${px}" y1="14" y2="${height}"/>` +
          `<text class="tick-label" x="${px}" y="11" text-anchor="middle">${this.label(u)}</text>`);
      }
    }

    label(u) {
      if (app.axis === 'order') return `#${Math.round(u)}`;
      if (this.run.unit === 'tick') return `t=${Math.round(u)}`;
      return `${(u / 1000).toFixed(u % 1000 === 0 ? 0 : 1)} ms`;
    }

    drawFaults(out, x, y, inView) {
      const run = this.run;
      run.faults.forEach((f, n) => {
        const a = this.uOfTime(f.start), b = this.uOfTime(f.end ?? run.tMax);
        if (!inView(a, b)) return;
        const what = `${f.kind} ${f.nodes.map((k) => run.nodes[k].name).join(', ')} from ${this.label(f.start)} to ${f.end == null ? 'the end' : this.label(f.end)}` +
          (f.detail ? ` (cut: ${f.detail})` : '');
        for (const k of f.nodes) {
          if (!y.has(k)) continue;
          out.push(`<rect class="fault fault-${esc(f.kind)}" data-fault="${n}" x="${x(a)}" y="${y.get(k) - LANE / 2 + 2}" ` +
            `width="${Math.max(1, x(b) - x(a)).toFixed(1)}" height="${LANE - 4}"><title>${esc(what)}</title></rect>`);
        }
      });
    }

    drawChosen(out, x, bottom, inView) {
      for (const e of this.run.chosen) {
        if (!slotShown(e.slot)) continue;
        const u = this.u(e);
        if (!inView(u, u)) continue;
        const px = x(u);
        const what = `${e.slot >= 0 ? `slot ${e.slot}` : 'the value'} chosen at ballot ${ballot(e.ballot) ?? '?'}` + (e.detail ? `: ${e.detail}` : '');
        out.push(`<line class="chosen-line" x1="${px}" x2="${px}" y1="${TOP}" y2="${bottom}"/>` +
          `<text class="star" data-i="${e.i}" x="${px}" y="${TOP - 4}" text-anchor="middle">★<title>${esc(what)}</title></text>`);
      }
    }

    drawArrows(out, x, y, inView, sel, cut) {
      const run = this.run;
      const visible = [];
      for (const a of run.arrows) {
        if (!arrowShown(a)) continue;
        const ua = this.u(a.from);
        const ub = a.to ? this.u(a.to) : a.end === 'lost' ? ua + this.lostSpan() : this.uMax();
        if (inView(ua, ub)) visible.push([a, ua, ub]);
      }
      const heads = visible.length <= MAX_HEADS ? ' marker-end="url(#head)"' : '';
      for (const [a, ua, ub] of visible) {
        const y1 = y.get(a.from.node), yPeer = y.get(a.peer);
        const y2 = a.end === 'lost' ? (y1 + yPeer) / 2 : yPeer;
        let cls = `msg k-${esc(a.kind)}`;
        if (a.dup) cls += ' dup';
        if (a.end === 'inflight') cls += ' inflight';
        if (sel) { const c = this.arrowCausal(a, sel); cls += c === 'other' ? ' dimmed' : ` ${c}`; }
        if ((a.to ?? a.from).i > cut) cls += ' later';
        out.push(`<line class="${cls}" data-id="${a.id}" data-end="${a.end}" x1="${x(ua)}" y1="${y1}" x2="${x(ub)}" y2="${y2}" ` +
          `stroke="${colourOf(a)}"${a.end === 'lost' ? '' : heads}/>`);
        if (a.end === 'lost') {
          const cx = Number(x(ub)), cy = y2;
          out.push(`<path class="cross" d="M${cx - 3},${cy - 3}L${cx + 3},${cy + 3}M${cx - 3},${cy + 3}L${cx + 3},${cy - 3}"/>`);
        }
      }
      return visible.length;
    }

    /** How far a lost message's arrow runs before its cross: half the median delay. */
    lostSpan() { return app.axis === 'time' ? this.run.halfDelay : 2; }

    /** `e` relative to the selected event: in its causal past, future, or neither. */
    causal(e, sel) {
      if (e === sel) return 'self';
      if (this.run.happenedBefore(e, sel)) return 'past';
      if (this.run.happenedBefore(sel, e)) return 'future';
      return 'other';
    }

    /** A message is in the selected event's past when it was sent and delivered (or
     *  lost) before it, in its future when sent at or after it. */
    arrowCausal(a, sel) {
      const from = this.causal(a.from, sel);
      if (from === 'self' || from === 'future') return 'future';
      if (from !== 'past') return 'other';
      if (!a.to) return 'past';
      const to = this.causal(a.to, sel);
      return to === 'past' || to === 'self' ? 'past' : 'other';
    }

    drawEvents(out, x, y, sel, cut) {
      const run = this.run;
      const first = app.axis === 'time' ? lowerBound(run.times, this.u0) : Math.max(0, Math.ceil(this.u0));
      const last = app.axis === 'time' ? lowerBound(run.times, this.u1 + 1) : Math.min(run.events.length, Math.floor(this.u1) + 1);
      if (last - first > MAX_DOTS) return null;
      let drawn = 0;
      for (let i = first; i < last; i++) {
        const e = run.events[i];
        if (!y.has(e.node) || !eventShown(run, e)) continue;
        let cls = `ev w-${esc(e.what)}`;
        if (sel) { const c = this.causal(e, sel); cls += c === 'self' ? ' selected' : c === 'other' ? ' dimmed' : ` ${c}`; }
        if (i > cut) cls += ' later';
        const r = e.id >= 0 ? 2.6 : 4;
        out.push(`<circle class="${cls}" data-i="${i}" cx="${x(this.u(e))}" cy="${y.get(e.node)}" r="${r}"/>`);
        drawn++;
      }
      return drawn;
    }

    drawOps(out, x, top, inView) {
      const run = this.run;
      const row = new Map(run.clients.map((c, k) => [c, k]));
      run.ops.forEach((o, n) => {
        const a = this.uOfTime(o.call), b = this.uOfTime(o.ret ?? run.tMax);
        if (!inView(a, b)) return;
        const x1 = Number(x(a)), w = Math.max(1.5, Number(x(b)) - x1), yy = top + row.get(o.client) * CLIENT_ROW;
        const what = `client ${o.client}: ${o.asked} → ${o.told}`;
        out.push(`<rect class="op op-${o.outcome}" data-op="${n}" x="${x1.toFixed(1)}" y="${yy}" width="${w.toFixed(1)}" height="${CLIENT_ROW - 1}"><title>${esc(what)}</title></rect>`);
        if (w > 110) out.push(`<text class="op-label" x="${(x1 + 3).toFixed(1)}" y="${yy + 8}">${esc(`${o.asked} → ${o.told}`.slice(0, Math.floor(w / 5)))}</text>`);
      });
    }

    /** The overview: the whole run's density per lane, chosen marks and faults; the window. */
    drawOverview(width) {
      const c = this.overview, run = this.run;
      const ratio = window.devicePixelRatio || 1;
      if (c.width !== Math.round(width * ratio)) {
        c.width = Math.round(width * ratio); c.height = OVERVIEW * ratio;
        c.style.width = `${width}px`; c.style.height = `${OVERVIEW}px`;
        this.base = null;
      }
      const ctx = c.getContext('2d');
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      const plot = width - LEFT - RIGHT, lo = this.uMin(), hi = this.uMax() + 1;
      const ox = (u) => LEFT + ((u - lo) / (hi - lo)) * plot;
      if (!this.base || this.baseAxis !== app.axis) {
        ctx.clearRect(0, 0, width, OVERVIEW);
        const rows = run.nodes.length, h = (OVERVIEW - 6) / rows;
        const bins = run.nodes.map(() => new Float32Array(Math.ceil(plot) + 1));
        for (const e of run.events) bins[e.node][Math.floor(ox(this.u(e)) - LEFT)]++;
        const peak = Math.max(1, ...bins.map((b) => Math.max(...b)));
        bins.forEach((b, k) => b.forEach((v, px) => {
          if (!v) return;
          ctx.fillStyle = `rgba(40,60,90,${0.15 + 0.85 * v / peak})`;
          ctx.fillRect(LEFT + px, 4 + k * h, 1, Math.max(1, h - 1));
        }));
        ctx.fillStyle = 'rgba(220,60,60,.35)';
        for (const f of run.faults) {
          const a = ox(this.uOfTime(f.start)), b = ox(this.uOfTime(f.end ?? run.tMax));
          for (const k of f.nodes) ctx.fillRect(a, 4 + k * h, Math.max(1, b - a), h);
        }
        ctx.fillStyle = '#2a9d3a';
        for (const e of run.chosen) ctx.fillRect(ox(this.u(e)), 0, 1, 4);
        this.base = ctx.getImageData(0, 0, c.width, c.height);
        this.baseAxis = app.axis;
      } else {
        ctx.putImageData(this.base, 0, 0);
      }
      ctx.strokeStyle = '#1f6fd1'; ctx.lineWidth = 1.5;
      const a = Math.max(LEFT, ox(this.u0)), b = Math.min(width - RIGHT, ox(this.u1));
      ctx.strokeRect(a, 1, Math.max(2, b - a), OVERVIEW - 2);
      this.overviewX = (px) => lo + ((px - LEFT) / plot) * (hi - lo);
    }

    // ------------------------------------------------------------ interaction

    /** Zooms by `factor` around the axis position under `px` (a pixel of the SVG). */
    zoom(factor, px) {
      const plot = this.plotWidth() - LEFT - RIGHT;
      const at = this.u0 + ((px ?? LEFT + plot / 2) - LEFT) / plot * (this.u1 - this.u0);
      const span = Math.max(app.axis === 'time' ? 2 : 4, (this.u1 - this.u0) * factor);
      const full = (this.uMax() - this.uMin()) * 1.2 + 10;
      const clamped = Math.min(span, full);
      this.u0 = at - (at - this.u0) * (clamped / (this.u1 - this.u0));
      this.u1 = this.u0 + clamped;
    }

    pan(pixels) {
      const plot = this.plotWidth() - LEFT - RIGHT;
      const du = (pixels / plot) * (this.u1 - this.u0);
      this.u0 -= du; this.u1 -= du;
    }

    centreOn(u) {
      const span = this.u1 - this.u0;
      this.u0 = u - span / 2; this.u1 = u + span / 2;
    }

    svgX(event) {
      const box = this.svg.getBoundingClientRect();
      return ((event.clientX - box.left) / box.width) * this.plotWidth();
    }

    listen() {
      this.svg.addEventListener('wheel', (ev) => {
        ev.preventDefault();
        this.zoom(ev.deltaY > 0 ? 1.25 : 0.8, this.svgX(ev));
        changed(this);
      }, { passive: false });
      let drag = null;
      this.svg.addEventListener('mousedown', (ev) => { drag = { x: ev.clientX, moved: false }; focus(this); });
      window.addEventListener('mousemove', (ev) => {
        if (!drag) return;
        const dx = ev.clientX - drag.x;
        if (!drag.moved && Math.abs(dx) < 4) return;
        drag.moved = true; drag.x = ev.clientX;
        this.svg.classList.add('panning');
        const box = this.svg.getBoundingClientRect();
        this.pan(dx * (this.plotWidth() / box.width));
        changed(this);
      });
      window.addEventListener('mouseup', () => { this.svg.classList.remove('panning'); setTimeout(() => { drag = null; }, 0); });
      this.svg.addEventListener('click', (ev) => {
        if (drag && drag.moved) return;
        const t = ev.target;
        if (t.dataset.i !== undefined) select(this, { event: this.run.events[Number(t.dataset.i)] });
        else if (t.dataset.op !== undefined) select(this, { op: this.run.ops[Number(t.dataset.op)] });
        else if (t.dataset.id !== undefined) select(this, { event: this.run.messages.get(Number(t.dataset.id))?.send });
      });
      this.svg.addEventListener('dblclick', () => { this.fit(); changed(this); });
      let moving = false;
      const jump = (ev) => { this.centreOn(this.overviewX(ev.offsetX)); changed(this); };
      this.overview.addEventListener('mousedown', (ev) => { moving = true; focus(this); jump(ev); });
      this.overview.addEventListener('mousemove', (ev) => { if (moving) jump(ev); });
      window.addEventListener('mouseup', () => { moving = false; });
    }
  }

  // ---------------------------------------------------------------- the page's controls

  /** After `diagram`'s window moved: runs on the same axis of time follow it. */
  function changed(diagram) {
    if (app.axis === 'time') {
      for (const d of app.diagrams) if (d !== diagram) { d.u0 = diagram.u0; d.u1 = diagram.u1; }
    }
    schedule();
  }

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; renderAll(); });
  }

  function renderAll() {
    for (const d of app.diagrams) d.render();
    showCursor();
    showSelected();
    showGrid();
  }

  function focus(diagram) {
    app.focused = diagram;
    for (const d of app.diagrams) d.section.classList.toggle('focused', d === diagram);
    const scrub = $('scrub');
    scrub.max = Math.max(0, diagram.run.events.length - 1);
    scrub.value = diagram.cursor;
    showStory();
  }

  /** Moves the focused run's cursor to event `i`; the other runs follow by time. */
  function moveCursor(i) {
    const d = app.focused, run = d.run;
    d.cursor = Math.max(0, Math.min(run.events.length - 1, i));
    const e = run.events[d.cursor];
    if (e) {
      for (const o of app.diagrams) if (o !== d) o.cursor = Math.max(0, o.run.lastIndexAt(e.t));
      const u = d.u(e);
      if (u < d.u0 || u > d.u1) { d.centreOn(u); changed(d); }
    }
    $('scrub').value = d.cursor;
    schedule();
  }

  /** The next (or previous) event that the filters show. */
  function step(direction) {
    const d = app.focused, run = d.run;
    for (let i = d.cursor + direction; i >= 0 && i < run.events.length; i += direction) {
      if (eventShown(run, run.events[i])) { moveCursor(i); return; }
    }
  }

  function select(diagram, what) {
    app.selected = what && (what.event || what.op) ? { diagram, ...what } : null;
    schedule();
  }

  function stateRows(run, state) {
    if (!state) return '<tr><td colspan="2">down</td></tr>';
    return [['role', state.role], ['promised', ballot(state.promised)], ['vote', ballot(state.vote)],
      ['commit', state.commit], ['applied', state.applied]]
      .filter(([, v]) => v !== null && v !== undefined)
      .map(([k, v]) => `<tr><th>${k}</th><td class="state-${k}">${esc(v)}</td></tr>`).join('');
  }

  function showSelected() {
    const box = $('selected');
    const s = app.selected;
    if (!s) { box.innerHTML = '<p class="hint">Click an event (a dot) to see its node\'s state and its causal past (blue) and future (orange).</p>'; return; }
    const run = s.diagram.run;
    if (s.op) {
      const o = s.op;
      box.innerHTML = `<table><tr><th>client</th><td>${o.client}</td></tr><tr><th>asked</th><td>${esc(o.asked)}</td></tr>` +
        `<tr><th>told</th><td>${esc(o.told)}</td></tr><tr><th>call</th><td>${s.diagram.label(o.call)}</td></tr>` +
        `<tr><th>return</th><td>${o.ret == null ? 'never' : s.diagram.label(o.ret)}</td></tr></table>`;
      return;
    }
    const e = s.event;
    const fields = [['event', e.what], ['node', run.nodes[e.node].name], ['time', s.diagram.label(e.t)], ['message', e.message],
      ['id', e.id >= 0 ? e.id : null], ['ballot', ballot(e.ballot)], ['slot', e.slot >= 0 ? e.slot : null],
      ['peer', e.peer >= 0 ? run.nodes[e.peer].name : null], ['detail', e.detail]];
    const clock = run.nodes.map((n, k) => `${esc(n.name)}:${run.clockOf(e.i, k)}`).join(' ');
    let past = 0, future = 0;
    for (const o of run.events) { if (run.happenedBefore(o, e)) past++; else if (run.happenedBefore(e, o)) future++; }
    box.innerHTML = `<table class="event" data-i="${e.i}">` +
      fields.filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => `<tr><th>${k}</th><td class="field-${k}">${esc(v)}</td></tr>`).join('') +
      `<tr><th>clock</th><td class="field-clock">${clock}</td></tr></table>` +
      `<h2>State of ${esc(run.nodes[e.node].name)} after it</h2><table class="state">${stateRows(run, e.state < 0 ? null : run.states[e.state])}</table>` +
      `<p class="hint"><span class="causal-counts" data-past="${past}" data-future="${future}">${past} events in its causal past, ${future} in its future</span>.</p>`;
  }

  function showCursor() {
    const d = app.focused;
    if (!d) return;
    const run = d.run, e = run.events[d.cursor];
    $('cursor-label').textContent = e ? `#${d.cursor} ${d.label(e.t)} ${run.nodes[e.node].name} ${e.what}` : '';
    const rows = run.nodes.map((n, k) => {
      const last = run.lastEventOf(k, d.cursor);
      const st = last && last.state >= 0 ? run.states[last.state] : null;
      const down = last && last.state < 0 && last.what !== 'send';
      const cells = st ? [st.role, ballot(st.promised) ?? '', st.commit ?? '', st.applied ?? ''] : [last ? (down ? 'down' : '') : '', '', '', ''];
      return `<tr data-node="${k}"><th>${esc(n.name)}</th>${cells.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`;
    }).join('');
    $('at-cursor').innerHTML = `<table><tr><th></th><th>role</th><th>promised</th><th>commit</th><th>applied</th></tr>${rows}</table>`;
  }

  /** A grid quorum system drawn as its grid: for one ballot and slot (the selected
   *  event's, else the latest at the cursor), which acceptors promised the ballot (phase 1
   *  needs a full row) and which hold a vote for the slot at it (phase 2: a full column). */
  function showGrid() {
    const d = app.focused, run = d.run, grid = run.raw.grid;
    $('grid-panel').hidden = !grid;
    if (!grid) return;
    const both = (e) => e && e.ballot && e.slot >= 0;
    const chosen = app.selected && app.selected.diagram === d ? app.selected.event : null;
    let ref = both(chosen) ? chosen : null;
    for (let i = d.cursor; !ref && i >= 0; i--) if (both(run.events[i])) ref = run.events[i];
    if (!ref) { $('grid').innerHTML = '<p class="hint">No ballot and slot yet at the cursor.</p>'; return; }
    const limit = ref === chosen ? chosen.i : d.cursor;
    const promised = run.nodes.map((n, k) => {
      const last = run.lastEventOf(k, limit);
      return !!last && last.state >= 0 && run.states[last.state].promised === ref.ballot;
    });
    const voted = run.nodes.map((n, k) => run.perNode[k].some((i) => i <= limit &&
      run.events[i].slot === ref.slot && run.events[i].state >= 0 && run.states[run.events[i].state].vote === ref.ballot));
    const at = (r, c) => r * grid.cols + c;
    const rows = [], cols = [];
    for (let r = 0; r < grid.rows; r++) if ([...Array(grid.cols).keys()].every((c) => promised[at(r, c)])) rows.push(r);
    for (let c = 0; c < grid.cols; c++) if ([...Array(grid.rows).keys()].every((r) => voted[at(r, c)])) cols.push(c);
    let table = `<table class="grid" data-ballot="${esc(ref.ballot)}" data-slot="${ref.slot}" data-rows-complete="${rows}" data-cols-complete="${cols}">`;
    for (let r = 0; r < grid.rows; r++) {
      table += `<tr class="${rows.includes(r) ? 'row-complete' : ''}">`;
      for (let c = 0; c < grid.cols; c++) {
        const k = at(r, c), node = run.nodes[k];
        const cls = [promised[k] ? 'promised' : '', voted[k] ? 'voted' : '', cols.includes(c) ? 'col-complete' : ''].join(' ');
        table += `<td class="${cls}" data-node="${k}">${esc(node ? node.name : '?')}</td>`;
      }
      table += '</tr>';
    }
    const names = (list, f) => list.map((x) => f(x)).join('; ');
    const rowNames = (r) => [...Array(grid.cols).keys()].map((c) => run.nodes[at(r, c)].name).join(' ');
    const colNames = (c) => [...Array(grid.rows).keys()].map((r) => run.nodes[at(r, c)].name).join(' ');
    $('grid').innerHTML = `${table}</table><p class="hint">ballot ${esc(ballot(ref.ballot))}, slot ${ref.slot}: ` +
      `phase 1 (a full row promised): ${rows.length ? names(rows, rowNames) : 'not yet'}; ` +
      `phase 2 (a full column voted): ${cols.length ? names(cols, colNames) : 'not yet'}.</p>`;
  }

  function showStory() {
    const chapters = app.focused.run.raw.chapters;
    $('story').hidden = !chapters.length;
    $('chapters').innerHTML = chapters.map((c, n) => `<li data-chapter="${n}">${esc(c.text)}</li>`).join('');
  }

  let chapter = -1;
  function openChapter(n) {
    const d = app.focused, chapters = d.run.raw.chapters;
    if (!chapters.length) return;
    chapter = ((n % chapters.length) + chapters.length) % chapters.length;
    const c = chapters[chapter];
    const i = c.event ?? d.run.lastIndexAt(c.time);
    app.selected = c.event == null ? null : { diagram: d, event: d.run.events[c.event] };
    [...$('chapters').children].forEach((li, k) => li.classList.toggle('current', k === chapter));
    moveCursor(Math.max(0, i));
    // A short run stays whole; in a long one the chapter's moment is shown at 60% of a
    // window no wider than a quarter of the run.
    const e = d.run.events[Math.max(0, i)];
    if (e && d.run.events.length > 400) {
      const u = d.u(e), span = Math.min(d.u1 - d.u0, (d.uMax() - d.uMin()) / 4);
      d.u0 = Math.max(d.uMin() - span * 0.02, u - span * 0.6); d.u1 = d.u0 + span;
      changed(d);
    }
  }

  function legend(runs) {
    const kinds = [...new Set(runs.flatMap((r) => r.messageKinds))];
    $('legend').innerHTML = kinds.map((k) => `<div><span class="swatch" style="background:${KIND_COLOURS[k] ?? hashColour(k)}"></span>${esc(k)}</div>`).join('') +
      '<div><span class="swatch" style="background:#e05050;opacity:.5"></span>crash</div>' +
      '<div><span class="swatch" style="background:#e0a800;opacity:.5"></span>pause</div>' +
      '<div><span class="swatch" style="background:#7a7aff"></span>partition (hatched)</div>' +
      '<div><span class="swatch" style="background:#9467bd;opacity:.5"></span>slow disk</div>' +
      '<div>★ the moment a slot is chosen; × a lost message; dashed: a duplicate</div>';
  }

  function filters(runs) {
    const names = [...new Set(runs.flatMap((r) => r.nodes.map((n) => n.name)))];
    const kinds = [...new Set(runs.flatMap((r) => r.messageKinds))].sort();
    const local = [...new Set(runs.flatMap((r) => r.localKinds))].sort();
    const group = (title, name, items) => `<fieldset><legend>${title}</legend>${items.map((v) =>
      `<label><input type="checkbox" checked data-filter="${name}" value="${esc(v)}"> ${esc(v)}</label>`).join('')}</fieldset>`;
    $('filter-lists').innerHTML = group('Nodes', 'node', names) + group('Messages', 'kind', kinds) + group('Events', 'local', local);
    $('filter-lists').addEventListener('change', (ev) => {
      const box = ev.target;
      const set = { node: null, kind: app.hiddenKinds, local: app.hiddenLocal }[box.dataset.filter];
      if (box.dataset.filter === 'node') {
        for (const d of app.diagrams) d.run.nodes.forEach((n, k) => {
          if (n.name === box.value) { if (box.checked) app.hiddenNodes.delete(k); else app.hiddenNodes.add(k); }
        });
      } else if (box.checked) set.delete(box.value); else set.add(box.value);
      schedule();
    });
  }

  function controls() {
    $('fit').onclick = () => { for (const d of app.diagrams) d.fit(); schedule(); };
    $('zoom-in').onclick = () => { app.focused.zoom(0.5); changed(app.focused); };
    $('zoom-out').onclick = () => { app.focused.zoom(2); changed(app.focused); };
    $('prev').onclick = () => step(-1);
    $('next').onclick = () => step(1);
    $('scrub').oninput = (ev) => moveCursor(Number(ev.target.value));
    $('axis').onchange = (ev) => { app.axis = ev.target.value; for (const d of app.diagrams) { d.fit(); d.base = null; } schedule(); };
    $('colour').onchange = (ev) => { app.colour = ev.target.value; schedule(); };
    $('slot').oninput = (ev) => { app.slot = parseSlot(ev.target.value); schedule(); };
    $('chapters').onclick = (ev) => { const li = ev.target.closest('li'); if (li) openChapter(Number(li.dataset.chapter)); };
    $('next-chapter').onclick = () => openChapter(chapter + 1);
    window.addEventListener('keydown', (ev) => {
      if (ev.target.tagName === 'INPUT' && ev.target.type !== 'range') return;
      if (ev.key === 'ArrowRight') { step(1); ev.preventDefault(); }
      else if (ev.key === 'ArrowLeft') { step(-1); ev.preventDefault(); }
      else if (ev.key === '+' || ev.key === '=') $('zoom-in').click();
      else if (ev.key === '-') $('zoom-out').click();
      else if (ev.key === 'Escape') select(null, null);
    });
    window.addEventListener('resize', () => { for (const d of app.diagrams) d.base = null; schedule(); });
  }

  const started = performance.now();
  const runs = RAW.map((raw) => new Run(raw));
  app.decodeMs = performance.now() - started;
  app.diagrams = runs.map((run, k) => new Diagram(run, k));
  controls();
  filters(runs);
  legend(runs);
  focus(app.diagrams[0]);
  renderAll();
  app.firstRenderMs = performance.now() - started;
  window.synodExplorer = app;
  document.body.dataset.ready = 'true';
})();
