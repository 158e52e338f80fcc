// The Synod Explorer in a real browser (headless Chromium), checked through the DOM
// against the trace files themselves: this file reads the JSON lines on its own and
// computes what the page must draw (arrows, stars, faults, operations, causal sets from
// the vector clocks), independently of the page's script.
//
// Run by scripts/explorer-test, which passes SYNOD (the binary), WORK (a scratch folder)
// and SHOTS (where screenshots are kept).
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, spawn } = require('node:child_process');
const { chromium } = require('playwright-core');

const SYNOD = process.env.SYNOD;
const WORK = process.env.WORK;
const SHOTS = process.env.SHOTS;
const TIMINGS = path.join(WORK, 'explorer-timings.json');

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => { await browser?.close(); });

function synod(...args) {
  return execFileSync(SYNOD, args, { cwd: WORK, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The trace file, read independently of the explorer: header, events, faults, ops. */
function readTrace(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l);
  const header = JSON.parse(lines[0]);
  const trace = { header, events: [], faults: [], ops: [] };
  for (const line of lines.slice(1)) {
    const value = JSON.parse(line);
    if ('event' in value) trace.events.push(value);
    else if ('fault' in value) trace.faults.push(value);
    else if ('op' in value) trace.ops.push(value.op);
  }
  return trace;
}

/** Arrows the page must draw: one per delivery (two for a duplicate), one per loss, one per
 *  message still in flight at the end. */
function expectedArrows(trace, keep = () => true) {
  const sends = new Map();
  for (const e of trace.events) if (e.event === 'send') sends.set(e.id, { send: e, ends: 0 });
  let arrows = 0;
  for (const e of trace.events) {
    if ((e.event === 'deliver' || e.event === 'drop') && sends.has(e.id)) {
      sends.get(e.id).ends++;
      if (keep(sends.get(e.id).send, e)) arrows++;
    }
  }
  for (const m of sends.values()) if (m.ends === 0 && keep(m.send, null)) arrows++;
  return arrows;
}

/** a happened before b: a's clock ≤ b's in every entry, and they differ. */
function before_(a, b) {
  let strictly = false;
  for (let k = 0; k < a.clock.length; k++) {
    if (a.clock[k] > b.clock[k]) return false;
    if (a.clock[k] < b.clock[k]) strictly = true;
  }
  return strictly;
}

async function open(file, name) {
  const page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
  const requests = [];
  const errors = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push(String(e)));
  const url = file.startsWith('http') ? file : `file://${file}`;
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
  page.verify = async () => {
    assert.deepEqual(errors, [], 'the page raised errors');
    assert.deepEqual(requests.filter((r) => r !== url), [], 'the page made network requests');
  };
  page.shot = (suffix = '') => page.screenshot({ path: path.join(SHOTS, `${name}${suffix}.png`), fullPage: true });
  return page;
}

const count = (page, selector) => page.locator(selector).count();

/** After the next frame the page draws (a render waits for an animation frame). */
const rendered = (page) => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

/** Waits (a render is one animation frame away) until `selector` matches `n` elements. */
async function waitCount(page, selector, n, what) {
  try {
    await page.waitForFunction(([s, n]) => document.querySelectorAll(s).length === n, [selector, n], { timeout: 10000 });
  } catch {
    assert.equal(await count(page, selector), n, what);
  }
}
const indices = (page, selector) => page.$$eval(selector, (els) => els.map((e) => Number(e.dataset.i)).sort((a, b) => a - b));

/** Selects event `i` and checks the panel and the causal highlight against the clocks. */
async function checkSelection(page, trace, i, how = 'dispatch') {
  const dot = page.locator(`circle.ev[data-i="${i}"]`).first();
  if (how === 'click') await dot.click({ force: true }); else await dot.dispatchEvent('click');
  await page.waitForSelector(`#selected table.event[data-i="${i}"]`);
  const e = trace.events[i];
  assert.equal(await page.textContent('#selected .field-event'), e.event);
  if (e.state) {
    assert.equal(await page.textContent('#selected .state-role'), e.state.role, `event ${i}'s role`);
    if (e.state.promised) assert.equal(await page.textContent('#selected .state-promised'), e.state.promised);
    if (e.state.commit !== undefined) assert.equal(Number(await page.textContent('#selected .state-commit')), e.state.commit);
  } else {
    assert.match(await page.textContent('#selected table.state'), /down/);
  }
  const past = [], future = [];
  trace.events.forEach((o, k) => { if (before_(o, e)) past.push(k); else if (before_(e, o)) future.push(k); });
  assert.deepEqual(await indices(page, 'circle.ev.past'), past, `event ${i}'s causal past`);
  assert.deepEqual(await indices(page, 'circle.ev.future'), future, `event ${i}'s causal future`);
  assert.deepEqual(await indices(page, 'circle.ev.selected'), [i]);
  return { past: past.length, future: future.length };
}

test('the seed-000 story: every message, the chosen moment, states and causality', async () => {
  synod('sim', 'synod', '--scenario', 'seed000', '--trace', 'seed000.jsonl');
  const trace = readTrace(path.join(WORK, 'seed000.jsonl'));
  synod('explore', '--story', 'seed000', '-o', 'seed000.html');
  const page = await open(path.join(WORK, 'seed000.html'), 'story-seed000');
  assert.equal(await count(page, 'line.msg'), expectedArrows(trace));
  assert.equal(await count(page, 'line.msg[data-end="lost"]'), trace.events.filter((e) => e.event === 'drop').length);
  assert.equal(await count(page, 'path.cross'), trace.events.filter((e) => e.event === 'drop').length);
  assert.equal(await count(page, 'text.star'), trace.events.filter((e) => e.event === 'chosen').length);
  assert.equal(await count(page, 'circle.ev'), trace.events.length);
  assert.equal(await count(page, '#chapters li'), 5);
  // Colours: one per message kind, or one per ballot, told apart by each message's own.
  const sends = new Map(trace.events.filter((e) => e.event === 'send').map((e) => [e.id, e]));
  const colouring = async (field) => {
    const pairs = await page.$$eval('line.msg', (ls) => ls.map((l) => [Number(l.dataset.id), l.getAttribute('stroke')]));
    const colours = new Map();
    for (const [id, stroke] of pairs) {
      const key = sends.get(id)[field];
      if (!colours.has(key)) colours.set(key, new Set());
      colours.get(key).add(stroke);
    }
    const all = new Set(pairs.map(([, stroke]) => stroke));
    return [...colours.values()].every((c) => c.size === 1) && all.size === colours.size;
  };
  assert.ok(await colouring('message'), 'one colour per message kind');
  assert.ok(!(await colouring('ballot')), 'kinds are not ballots here');
  await page.selectOption('#colour', 'ballot');
  await rendered(page);
  assert.ok(await colouring('ballot'), 'one colour per ballot');
  await page.selectOption('#colour', 'kind');
  // In event order every dot has room: a real mouse click.
  await page.selectOption('#axis', 'order');
  await page.waitForFunction(() => document.querySelector('.tick-label')?.textContent.startsWith('#'));
  const chosen = trace.events.findIndex((e) => e.event === 'chosen');
  const counts = await checkSelection(page, trace, chosen, 'click');
  assert.ok(counts.past > 10 && counts.future > 0, JSON.stringify(counts));
  assert.match(await page.textContent('#selected .field-detail'), /banana/);
  for (const i of [0, 17, 60, trace.events.length - 1]) await checkSelection(page, trace, i);
  // The chapters move the cursor: later events fade.
  await page.click('#chapters li[data-chapter="3"]');
  await page.click('#fit');
  await page.waitForSelector('line.cursor', { state: 'attached' });
  // The chapter selects its event and puts the cursor on it.
  await waitCount(page, 'circle.ev.later', trace.events.length - 1 - chosen, 'events after the chapter');
  assert.deepEqual(await indices(page, 'circle.ev.selected'), [chosen]);
  await page.shot();
  await page.verify();
  await page.close();
});

test('a small cluster run: faults, operations, filters, stepping', async () => {
  synod('sim', '--seed', '11', '--duration-ticks', '150', '--liveness-ticks', '200', '--crash', '0.02',
    '--pause', '0.02', '--partition', '0.02', '--trace', 'small.jsonl');
  const trace = readTrace(path.join(WORK, 'small.jsonl'));
  assert.ok(trace.faults.length > 0 && trace.ops.length > 0, 'the run has faults and operations');
  synod('explore', 'small.jsonl');
  const page = await open(path.join(WORK, 'small.html'), 'cluster-small');
  assert.ok(trace.events.length <= 8000, `${trace.events.length} events: dots must be drawn`);
  assert.equal(await count(page, 'line.msg'), expectedArrows(trace));
  assert.equal(await count(page, 'circle.ev'), trace.events.length);
  assert.equal(await count(page, 'rect.fault'), trace.faults.reduce((n, f) => n + f.nodes.length, 0));
  assert.equal(await count(page, 'rect.op'), trace.ops.length);
  assert.equal(await count(page, 'text.star'), trace.events.filter((e) => e.event === 'chosen').length);
  for (const kind of ['crash', 'pause', 'partition']) {
    const n = trace.faults.filter((f) => f.fault === kind).reduce((s, f) => s + f.nodes.length, 0);
    assert.equal(await count(page, `rect.fault-${kind}`), n, kind);
  }
  // Causality on events of every kind: a delivery, an election, a crash's restart.
  const picks = ['deliver', 'elected', 'chosen', 'apply', 'restart']
    .map((w) => trace.events.findIndex((e) => e.event === w)).filter((i) => i >= 0);
  for (const i of picks) await checkSelection(page, trace, i);
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.querySelector('circle.ev.past'));

  // Filters: message kinds, a node, a slot.
  await page.click('#filters summary');
  const kind = 'heartbeat';
  await page.uncheck(`input[data-filter="kind"][value="${kind}"]`);
  await waitCount(page, 'line.msg', expectedArrows(trace, (s) => s.message !== kind), 'without heartbeats');
  await page.check(`input[data-filter="kind"][value="${kind}"]`);
  const name = trace.header.nodes[1];
  await page.uncheck(`input[data-filter="node"][value="${name.name}"]`);
  const n2 = name.id;
  await waitCount(page, 'line.msg', expectedArrows(trace, (s) => s.node !== n2 && s.peer !== n2), 'without n2');
  await waitCount(page, 'text.lane-name', trace.header.nodes.length - 1, 'lanes');
  await page.check(`input[data-filter="node"][value="${name.name}"]`);
  await page.click('#filters summary');
  await page.fill('#slot', '2');
  await waitCount(page, 'line.msg', expectedArrows(trace, (s) => s.slot === 2), 'slot 2');
  await waitCount(page, 'text.star', trace.events.filter((e) => e.event === 'chosen' && e.slot === 2).length, 'stars of slot 2');
  await page.fill('#slot', '');

  // Stepping: the scrubber's cursor walks the events; the state table follows.
  await page.fill('#scrub', '0');
  await page.dispatchEvent('#scrub', 'input');
  for (let k = 0; k < 5; k++) await page.click('#next');
  assert.equal(await page.inputValue('#scrub'), '5');
  await waitCount(page, 'circle.ev.later', trace.events.length - 6, 'events after the cursor');
  await page.keyboard.press('ArrowLeft');
  assert.equal(await page.inputValue('#scrub'), '4');
  await waitCount(page, 'circle.ev.later', trace.events.length - 5, 'events after the cursor');
  const e4 = trace.events[4];
  const row = await page.textContent(`#at-cursor tr[data-node="${trace.header.nodes.findIndex((n) => n.id === e4.node)}"]`);
  if (e4.state) assert.ok(row.includes(e4.state.role), `${row} shows ${e4.state.role}`);
  await page.shot();
  await page.verify();
  await page.close();
});

test('a 2,000-tick, 5-node run stays responsive (timings recorded)', async () => {
  synod('sim', '--seed', '1', '--trace', 'large.jsonl');
  const trace = readTrace(path.join(WORK, 'large.jsonl'));
  assert.equal(trace.header.nodes.length, 5);
  synod('explore', 'large.jsonl');
  const started = Date.now();
  const page = await open(path.join(WORK, 'large.html'), 'cluster-2000-ticks');
  const loadMs = Date.now() - started;
  // The whole run in view: every arrow drawn (dots wait for a zoom).
  assert.equal(await count(page, 'line.msg'), expectedArrows(trace));
  const firstRender = await page.evaluate(() => window.synodExplorer.firstRenderMs);
  // Redraw the whole run, zoom in ten steps at the middle (to about a 12 ms window), pan
  // there, select an event there.
  const times = await page.evaluate(async () => {
    const app = window.synodExplorer, d = app.diagrams[0];
    const measure = (action) => { const t = performance.now(); action(); d.render(); return performance.now() - t; };
    const whole = [0, 1, 2].map(() => measure(() => d.fit()));
    const zoom = [];
    for (let k = 0; k < 10; k++) zoom.push(measure(() => d.zoom(0.6)));
    const pan = [0, 1, 2, 3, 4].map(() => measure(() => d.pan(150)));
    const dot = document.querySelector('circle.ev[data-i]');
    const select = measure(() => dot.dispatchEvent(new MouseEvent('click', { bubbles: true })));
    return { whole, zoom, pan, select, window_ms: d.u1 - d.u0, dots: app.timings.at(-1).dots };
  });
  assert.ok(times.dots > 0, 'zoomed in, the dots are drawn');
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const figures = {
    events: trace.events.length, messages: trace.events.filter((e) => e.event === 'send').length,
    load_ms: loadMs, first_render_ms: Math.round(firstRender),
    whole_run_render_median_ms: Math.round(median(times.whole)),
    zoom_step_median_ms: Math.round(median(times.zoom)),
    window_us: Math.round(times.window_ms),
    pan_in_window_median_ms: Math.round(median(times.pan)),
    select_in_window_ms: Math.round(times.select),
  };
  fs.writeFileSync(TIMINGS, JSON.stringify(figures, null, 1));
  console.log('explorer timings:', JSON.stringify(figures));
  await page.shot();
  await page.verify();
  await page.close();
});

test('one seed under Paxos\'s and Raft\'s elections, side by side on one time axis', async () => {
  const run = (mode, file) => synod('sim', '--seed', '4', '--election', mode, '--crash-leader-at-tick', '60',
    '--duration-ticks', '120', '--liveness-ticks', '200', '--trace', file);
  run('paxos', 'a.jsonl');
  run('raft', 'b.jsonl');
  synod('explore', 'a.jsonl', 'b.jsonl', '-o', 'ab.html');
  const page = await open(path.join(WORK, 'ab.html'), 'two-runs');
  assert.equal(await count(page, 'section.run'), 2);
  const a = readTrace(path.join(WORK, 'a.jsonl')), b = readTrace(path.join(WORK, 'b.jsonl'));
  assert.equal(await count(page, 'section.run[data-run="0"] line.msg'), expectedArrows(a));
  assert.equal(await count(page, 'section.run[data-run="1"] line.msg'), expectedArrows(b));
  const box = await page.locator('section.run[data-run="0"] svg').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + 60);
  for (let k = 0; k < 4; k++) await page.mouse.wheel(0, -100);
  await rendered(page);
  const labels = (k) => page.$$eval(`section.run[data-run="${k}"] .tick-label`, (els) => els.map((e) => e.textContent));
  assert.deepEqual(await labels(0), await labels(1));
  assert.ok((await count(page, 'section.run[data-run="0"] line.msg')) < expectedArrows(a), 'zoomed in');
  await page.shot();
  await page.verify();
  await page.close();
});

test('synod explore --serve serves the page on localhost', async () => {
  const child = spawn(SYNOD, ['explore', 'seed000.jsonl', '-o', 'served.html', '--serve', '127.0.0.1:0'], { cwd: WORK });
  try {
    const url = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => { out += d; const m = out.match(/serving (http:\/\/\S+)/); if (m) resolve(m[1]); });
      child.on('exit', (code) => reject(new Error(`synod explore exited ${code}: ${out}`)));
    });
    const page = await open(url, 'served');
    assert.match(await page.title(), /Synod Explorer/);
    assert.ok((await count(page, 'line.msg')) > 0);
    await page.verify();
    await page.close();
  } finally {
    child.kill();
  }
});

/** Opens story `name`, walks its chapters in order; returns the page at the last one. */
async function walkStory(name, chapters) {
  synod('explore', '--story', name, '-o', `story-${name}.html`);
  const page = await open(path.join(WORK, `story-${name}.html`), `story-${name}`);
  const items = await count(page, '#chapters li');
  assert.ok(items >= chapters, `${name}: ${items} chapters`);
  let previous = -1;
  for (let k = 0; k < items; k++) {
    await page.click(`#chapters li[data-chapter="${k}"]`);
    await page.waitForSelector(`#chapters li.current[data-chapter="${k}"]`);
    const cursor = Number(await page.inputValue('#scrub'));
    assert.ok(cursor >= previous, `${name}: chapter ${k} moves the cursor forward`);
    previous = cursor;
    await page.shot(`-chapter-${k}`);
  }
  return page;
}

test('every story plays, its chapters in order', async () => {
  for (const [name, chapters] of [['duelling', 8], ['zombie', 6], ['read-index', 5], ['membership', 4]]) {
    const page = await walkStory(name, chapters);
    assert.ok((await count(page, 'line.msg')) > 0);
    await page.verify();
    await page.close();
  }
});

test('the grid story shows phase 1 by a row and phase 2 by a column', async () => {
  const page = await walkStory('grid', 3);
  const grid = async () => page.$eval('#grid table.grid', (t) => ({
    rows: t.dataset.rowsComplete, cols: t.dataset.colsComplete, ballot: t.dataset.ballot, slot: Number(t.dataset.slot),
    voted: [...t.querySelectorAll('td.voted')].map((td) => Number(td.dataset.node)),
  }));
  await page.click('#chapters li[data-chapter="1"]');
  await page.waitForFunction(() => document.querySelector('#grid table.grid')?.dataset.rowsComplete !== '');
  assert.match((await grid()).rows, /^[01](,[01])?$/, 'the elected leader has a full row');
  await page.click('#chapters li[data-chapter="2"]');
  await page.waitForFunction(() => document.querySelector('#grid table.grid')?.dataset.colsComplete !== '');
  const at = await grid();
  assert.match(at.cols, /^[012](,[012])*$/);
  // The column is made of acceptors that voted: two of six, one per row.
  for (const c of at.cols.split(',').map(Number)) {
    assert.ok(at.voted.includes(c) && at.voted.includes(3 + c), `column ${c} voted: ${at.voted}`);
  }
  await page.shot('-grid');
  await page.verify();
  await page.close();
});

test('a real failover recorded by three synod serve members, merged', async () => {
  const file = path.resolve(__dirname, '../../docs/examples/failover-trace.jsonl');
  const trace = readTrace(file);
  assert.equal(trace.header.source, 'serve');
  synod('explore', file, '-o', 'failover.html');
  const page = await open(path.join(WORK, 'failover.html'), 'real-failover');
  assert.equal(await count(page, 'line.msg'), expectedArrows(trace));
  assert.equal(await count(page, 'circle.ev'), trace.events.length);
  assert.equal(await count(page, 'rect.fault-crash'), trace.faults.filter((f) => f.fault === 'crash').length);
  // The second election, after the crash: its causal past holds the crashed leader's
  // last events, as the clocks say.
  const elected = trace.events.map((e, i) => [e, i]).filter(([e]) => e.event === 'elected').map(([, i]) => i);
  assert.equal(elected.length, 2);
  await checkSelection(page, trace, elected[1]);
  await page.shot();
  await page.verify();
  await page.close();
});
