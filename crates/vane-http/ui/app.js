// vane UI: plain JavaScript against the JSON API, no framework and no build step.
//
// Pages are routed by the URL's hash (#/dags/etl), so every page is one file the binary
// embeds. Each page is a function that reads the API and draws itself; the page is drawn
// again every few seconds (unless the person is typing), which is how it stays live.
// Elements are built with textContent only: names come from DAG files and task output, and
// must never be read as markup.
'use strict';

const REFRESH_MS = 5000;
const main = document.getElementById('main');

// ---- elements -------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'text') el.textContent = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const link = (href, ...children) => h('a', { href }, ...children);
const badge = (state, text) => h('span', { class: `badge state-${state}` }, text || label(state));
const sev = (severity) => h('span', { class: `badge sev-${severity}` }, severity);
const label = (state) => String(state || 'none').replace('_', ' ');
const panel = (...children) => h('div', { class: 'panel' }, ...children);
const empty = (text) => h('p', { class: 'empty' }, text);

function table(headers, rows, attrs) {
  return h('table', attrs,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows));
}

function kv(pairs) {
  return h('dl', { class: 'kv' },
    pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
      .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

// ---- time -----------------------------------------------------------------------------

// When things happened (started, ended, seen) is shown in UTC, so that a screenshot pasted
// into an incident channel means the same to everyone; a run's logical date is shown in its
// DAG's time zone with the offset (see `logical`), as the command line prints both.
function when(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

// A logical date as the API gives it, in its DAG's time zone with the offset
// (`2026-03-29 03:00:00 +02:00`): the date the schedule names, not this browser's.
function logical(iso) {
  if (!iso) return '–';
  return iso.replace('T', ' ').replace(/(\.\d+)?([+-]\d\d:\d\d|Z)$/, (_, _frac, zone) => ` ${zone === 'Z' ? '+00:00' : zone}`);
}

function ago(iso) {
  if (!iso) return '–';
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  const span = duration(Math.abs(seconds));
  return seconds >= 0 ? `${span} ago` : `in ${span}`;
}

function timeEl(iso) {
  return h('span', { title: when(iso) }, iso ? ago(iso) : '–');
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '–';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m ${Math.round(seconds % 60)}s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours}h ${m % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

function between(start, end) {
  if (!start) return null;
  const stop = end ? new Date(end) : new Date();
  return (stop - new Date(start)) / 1000;
}

function number(value) {
  if (value === null || value === undefined) return '–';
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 0.001 || abs >= 1e6)) return value.toExponential(3);
  return String(Math.round(value * 10000) / 10000);
}

// ---- API ------------------------------------------------------------------------------

const enc = encodeURIComponent;

async function api(path) {
  const response = await fetch(path, { headers: authHeaders() });
  return answer(response);
}

async function answer(response) {
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.error) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function authHeaders() {
  const token = localStorage.getItem('vane-token');
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// An action: POST with the token; says what happened in the banner and redraws the page.
async function act(path, body, done) {
  if (!localStorage.getItem('vane-token')) {
    askToken(() => act(path, body, done));
    return;
  }
  const user = localStorage.getItem('vane-user');
  // An approval or a rejection is evidence in the model ledger: it needs a name.
  if (!user && /\/(approve|reject)$/.test(path)) {
    say('Say who you are (“Your name”) before approving or rejecting: the ledger records it.');
    askToken(() => act(path, body, done));
    return;
  }
  // Who acts, where the action records a person (not a trigger, a pause or a snooze).
  const records = /\/(clear|stop|mark|approve|reject|rollback|ack|resolve)$/.test(path);
  const payload = Object.assign(user && records ? { by: user } : {}, body || {});
  try {
    const response = await fetch(path, {
      method: 'POST',
      headers: Object.assign({ 'Content-Type': 'application/json' }, authHeaders()),
      body: JSON.stringify(payload),
    });
    const result = await answer(response);
    say(typeof done === 'function' ? done(result) : done, true);
    render();
  } catch (error) {
    if (error.status === 401) {
      say(`${error.message}. Paste the API token under “API token”.`);
      askToken(() => act(path, body, done));
    } else {
      say(error.message);
    }
  }
}

function say(text, ok) {
  const banner = document.getElementById('banner');
  banner.textContent = text;
  banner.className = ok ? 'banner ok' : 'banner';
  banner.hidden = !text;
  clearTimeout(say.timer);
  if (ok) say.timer = setTimeout(() => { banner.hidden = true; }, 6000);
}

function askToken(then) {
  const dialog = document.getElementById('token-dialog');
  document.getElementById('token-input').value = localStorage.getItem('vane-token') || '';
  document.getElementById('user-input').value = localStorage.getItem('vane-user') || '';
  dialog.onclose = () => {
    if (dialog.returnValue !== 'save') return;
    const token = document.getElementById('token-input').value.trim();
    const user = document.getElementById('user-input').value.trim();
    if (token) localStorage.setItem('vane-token', token); else localStorage.removeItem('vane-token');
    if (user) localStorage.setItem('vane-user', user); else localStorage.removeItem('vane-user');
    if (token && then) then();
    render();
  };
  dialog.showModal();
}

// ---- routing and refresh --------------------------------------------------------------

const routes = [
  [/^\/?$/, pageDags, 'dags'],
  [/^\/runs$/, pageRuns, 'runs'],
  [/^\/dags\/([^/]+)$/, (id) => pageDag(id, 'grid'), 'dags'],
  [/^\/dags\/([^/]+)\/(graph|checks|metrics|ticks)$/, pageDag, 'dags'],
  [/^\/runs\/(\d+)$/, pageRun, 'runs'],
  [/^\/runs\/(\d+)\/tasks\/([^/]+)\/(\d+)$/, pageAttempt, 'runs'],
  [/^\/models$/, pageModels, 'models'],
  [/^\/models\/([^/]+)$/, pageModel, 'models'],
  [/^\/alerts$/, () => pageAlerts(false), 'alerts'],
  [/^\/agents$/, pageAgents, 'agents'],
  [/^\/alerts\/all$/, () => pageAlerts(true), 'alerts'],
];

let drawing = 0;
// Work a page keeps going between redraws (a followed log); stopped when the page changes.
let keep = { key: null, stop: null };

async function render() {
  const path = decodeURI(location.hash.replace(/^#/, '').split('?')[0]) || '/';
  const ticket = ++drawing;
  const found = routes.map(([re, page, nav]) => [path.match(re), page, nav]).find(([m]) => m);
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', !!found && a.dataset.nav === found[2]);
  }
  let content;
  try {
    content = found
      ? await found[1](...found[0].slice(1).map(decodeURIComponent))
      : h('div', {}, h('h1', {}, 'Not found'), h('p', {}, 'No page at ', h('code', {}, path), '. ', link('#/', 'See the DAGs.')));
    live(true);
  } catch (error) {
    live(false);
    // fetch() rejects with a TypeError only when no answer came at all.
    const message = error instanceof TypeError
      ? `No answer from vane at ${location.host}: is \`vane serve\` or \`vane scheduler --http\` still running? This page retries every few seconds.`
      : error.message;
    content = h('div', {}, h('h1', {}, 'Cannot show this page'), h('p', { class: 'errors' }, message));
  }
  // A slower, older draw must not replace a newer one.
  if (ticket !== drawing) return;
  main.replaceChildren(content);
  if (keep.key !== path && keep.stop) { keep.stop(); keep = { key: null, stop: null }; }
  header();
}

function live(ok) {
  const el = document.getElementById('live');
  el.className = ok ? 'live ok' : 'live down';
  el.textContent = ok ? `live · ${new Date().toISOString().slice(11, 19)} UTC` : 'cannot reach vane';
}

// Counts and on-call in the header, on every page.
async function header() {
  try {
    const [alerts, oncall, status] = await Promise.all([api('/api/alerts'), api('/api/oncall?turns=1'), api('/api/status')]);
    const count = document.getElementById('alert-count');
    const open = alerts.filter((a) => a.state === 'open').length;
    count.textContent = open;
    count.hidden = open === 0;
    document.getElementById('oncall').textContent = oncall.now ? `on call: ${oncall.now}` : '';
    const up = status.schedulers.filter((x) => x.status === 'up');
    const el = document.getElementById('scheduler');
    const many = up.length > 1 ? `${up.length} schedulers up` : 'scheduler up';
    el.textContent = up.length ? `${many} · ${up.map((x) => x.host).join(', ')}` : 'no scheduler running';
    el.className = up.length ? 'scheduler ok' : 'scheduler down';
    el.title = up.length
      ? up.map((x) => `${x.host} pid ${x.pid}: heartbeat ${Math.round(x.heartbeat_age_seconds)} s ago, lease ${x.lease ? x.lease.state : 'none'}, ${x.runs_owned} runs owned, ${x.passes} passes, last ${x.last_pass_ms === null ? '–' : x.last_pass_ms.toFixed(1)} ms`).join('\n')
      : `Runs are not started on their schedule: start \`vane scheduler\` on ${status.database}.`;
  } catch (_) { /* the page itself says when the API is down */ }
}

// Redraws unless the person is typing or a dialog is open, which a redraw would throw away.
function tick() {
  const active = document.activeElement;
  const typing = active && ['INPUT', 'SELECT', 'TEXTAREA'].includes(active.tagName) && main.contains(active);
  const dialogOpen = document.querySelector('dialog[open]');
  if (!typing && !dialogOpen && !document.hidden) render();
}

// ---- pages: DAGs ----------------------------------------------------------------------

async function pageDags() {
  const [dags, running, alerts] = await Promise.all([
    api('/api/dags'), api('/api/runs?state=running&limit=0'), api('/api/alerts'),
  ]);
  const valid = dags.filter((d) => d.valid);
  const invalid = dags.filter((d) => !d.valid);
  const failing = valid.filter((d) => d.last_run && d.last_run.state === 'failed');
  const openAlerts = alerts.filter((a) => a.state === 'open');
  const cards = h('div', { class: 'cards' },
    card(valid.length, 'DAGs'),
    card(failing.length, 'last run failed', failing.length > 0),
    card(running.length, 'runs running'),
    card(openAlerts.length, 'open alerts', openAlerts.length > 0, '#/alerts'),
    card(invalid.length, 'files with errors', invalid.length > 0));
  const rows = valid.map((d) => h('tr', { 'data-dag': d.id },
    h('td', {}, link(`#/dags/${enc(d.id)}`, h('strong', {}, d.id)),
      d.description ? h('div', { class: 'muted' }, d.description) : null),
    h('td', {}, d.schedule ? h('code', {}, d.schedule) : h('span', { class: 'muted' }, 'manual'),
      d.schedule ? h('div', { class: 'muted' }, d.timezone) : null),
    h('td', {}, d.paused ? h('span', { class: 'badge paused' }, 'paused') : (d.next_run ? timeEl(d.next_run) : '–')),
    h('td', {}, recentDots(d)),
    h('td', {}, d.last_run ? [runBadge(d.last_run), ' ', timeEl(d.last_run.queued_at)] : h('span', { class: 'muted' }, 'never ran')),
    h('td', {}, h('div', { class: 'row' },
      h('button', { type: 'button', onclick: () => act(`/api/dags/${enc(d.id)}/trigger`, {}, (r) => `Queued run ${r.run_id} of ${d.id}; the scheduler starts it.`) }, 'Trigger'),
      h('button', {
        type: 'button', class: 'quiet',
        onclick: () => act(`/api/dags/${enc(d.id)}/${d.paused ? 'unpause' : 'pause'}`, {}, `${d.id} ${d.paused ? 'unpaused' : 'paused'}.`),
      }, d.paused ? 'Unpause' : 'Pause')))));
  return h('div', {},
    h('h1', {}, 'DAGs'),
    h('p', { class: 'sub' }, 'Every DAG in the DAG folder, its cadence and how its recent runs went.'),
    cards,
    invalid.length ? panel(h('h2', {}, 'Files that do not validate'),
      h('p', { class: 'muted' }, 'A DAG whose file stops validating keeps running its last good version until the file is fixed; a DAG that never validated does not run. The others run as usual. `vane validate` prints the same.'),
      invalid.map((d) => h('div', { class: 'invalid-dag' }, h('strong', {}, d.path),
        h('ul', { class: 'errors' }, d.errors.map((e, i) => {
          const hint = d.diagnostics && d.diagnostics[i] && d.diagnostics[i].hint;
          return h('li', {}, e, hint ? h('div', { class: 'hint' }, `hint: ${hint}`) : null);
        }))))) : null,
    panel(valid.length
      ? table(['DAG', 'Schedule', 'Next run', 'Recent runs', 'Last run', ''], rows, { class: 'dags' })
      : empty('No DAG files in the DAG folder yet.')));
}

function card(n, text, bad, href) {
  const body = [h('div', { class: 'n' }, n), h('div', { class: 'l' }, text)];
  return href ? h('a', { class: `card${bad ? ' bad' : ''}`, href }, body) : h('div', { class: `card${bad ? ' bad' : ''}` }, body);
}

function recentDots(d) {
  const runs = (d.recent || []).slice().reverse();
  if (!runs.length) return h('span', { class: 'muted' }, '–');
  return h('span', { class: 'dots' }, runs.map((r) =>
    h('a', { class: `dot state-${r.state}`, href: `#/runs/${r.id}`, title: `run ${r.id}: ${r.state}, ${logical(r.logical_date)}` })));
}

// ---- pages: runs ----------------------------------------------------------------------

async function pageRuns() {
  const state = new URLSearchParams(location.hash.split('?')[1] || '').get('state') || '';
  const runs = await api(`/api/runs?limit=50${state ? `&state=${enc(state)}` : ''}`);
  const filter = h('div', { class: 'tabs' }, [['', 'All'], ['failed', 'Failed'], ['running', 'Running'], ['queued', 'Queued'], ['success', 'Succeeded']].map(([key, text]) =>
    h('a', { href: key ? `#/runs?state=${key}` : '#/runs', class: state === key ? 'active' : null }, text)));
  return h('div', {}, h('h1', {}, 'Runs'), h('p', { class: 'sub' }, `The last 50 ${state ? `${label(state)} ` : ''}runs of every DAG, newest first.`),
    filter,
    panel(runs.length ? runsTable(runs, true) : empty(state ? `No ${label(state)} runs.` : 'No runs yet. Start one with `vane run DAG` or the Trigger button.')));
}

function runsTable(runs, withDag) {
  return table(['Run', withDag ? 'DAG' : null, 'State', 'Trigger', 'Logical date', 'Started', 'Duration'].filter(Boolean),
    runs.map((r) => h('tr', {},
      h('td', { 'data-run': r.id }, link(`#/runs/${r.id}`, `#${r.id}`)),
      withDag ? h('td', {}, link(`#/dags/${enc(r.dag_id)}`, r.dag_id)) : null,
      h('td', {}, badge(r.state), r.reason ? h('div', { class: 'muted' }, r.reason) : null),
      h('td', {}, r.trigger),
      h('td', {}, logical(r.logical_date)),
      h('td', {}, timeEl(r.started_at)),
      h('td', { class: 'num' }, duration(between(r.started_at, r.ended_at))))));
}

// ---- pages: one DAG (grid, graph, checks, metrics) -------------------------------------

async function pageDag(id, tab) {
  const dag = await api(`/api/dags/${enc(id)}?runs=25`);
  const tabs = h('div', { class: 'tabs' },
    [['grid', 'Grid'], ['graph', 'Graph'], ['checks', 'Data checks'], ['metrics', 'Metrics'], ['ticks', 'Ticks']].map(([key, text]) =>
      h('a', { href: key === 'grid' ? `#/dags/${enc(id)}` : `#/dags/${enc(id)}/${key}`, class: tab === key ? 'active' : null }, text)));
  const head = h('div', {},
    h('div', { class: 'row' }, h('h1', {}, dag.id),
      dag.paused ? h('span', { class: 'badge paused' }, 'paused') : null,
      dag.valid === false ? h('span', { class: 'badge state-failed' }, 'does not validate') : null,
      h('span', { class: 'spacer' }),
      dag.valid ? h('button', { type: 'button', onclick: () => triggerForm(dag) }, 'Trigger') : null,
      dag.valid ? h('button', { type: 'button', class: 'quiet', onclick: () => act(`/api/dags/${enc(id)}/${dag.paused ? 'unpause' : 'pause'}`, {}, `${id} ${dag.paused ? 'unpaused' : 'paused'}.`) }, dag.paused ? 'Unpause' : 'Pause') : null),
    h('p', { class: 'sub' }, [dag.description, dag.schedule ? `schedule ${dag.schedule} (${dag.timezone})` : 'manual runs only',
      dag.next_run && !dag.paused ? `next run ${when(dag.next_run)}` : null, dag.path].filter(Boolean).join(' · ')),
    (dag.errors || []).length ? panel(h('ul', { class: 'errors' }, dag.errors.map((e) => h('li', {}, e)))) : null,
    tabs);
  let body;
  if (tab === 'graph') body = dagGraph(dag);
  else if (tab === 'checks') body = await dagChecks(id);
  else if (tab === 'metrics') body = await dagMetrics(id);
  else if (tab === 'ticks') body = await dagTicks(id);
  else body = dagGrid(dag);
  return h('div', {}, head, body);
}

// "Why didn't my 02:00 run happen?": each tick with its decision, in the DAG's own time zone
// (as the schedule is written), and what stops the next one.
async function dagTicks(id) {
  const t = await api(`/api/dags/${enc(id)}/ticks?limit=50`);
  const notes = t.notes.length
    ? panel(h('div', { role: 'status' }, h('ul', { class: 'errors' }, t.notes.map((n) => h('li', {}, n)))))
    : null;
  const rows = t.ticks.map((k) => h('tr', {},
    h('td', { class: 'mono' }, logical(k.logical_date)),
    h('td', { class: 'mono' }, logical(k.decided_at)),
    h('td', {}, k.decision === 'run'
      ? link(`#/runs/${k.run_id}`, `run ${k.run_id}`)
      : [badge('skipped'), ' ', k.reason])));
  return h('div', {},
    h('p', { class: 'sub' }, `Times in ${t.timezone}. ${t.next ? `Next tick ${logical(t.next)}.` : 'No schedule: runs only when triggered.'}`),
    notes,
    t.ticks.length ? panel(table(['Tick (logical date)', 'Decided', 'Decision'], rows)) : panel(empty('No tick decided yet.')));
}

// Trigger with params and a logical date: a form with the DAG's params at their defaults.
// When no scheduler runs, the queued run would wait unseen: the answer says so.
function triggerForm(dag) {
  const params = Object.entries(dag.params || {});
  const field = ([name, value]) => {
    const id = `param-${name}`;
    const input = typeof value === 'boolean'
      ? h('input', { id, name, type: 'checkbox', checked: value ? '' : null })
      : h('input', { id, name, type: typeof value === 'number' ? 'number' : 'text', step: 'any', value: String(value) });
    return h('label', { for: id }, h('code', {}, name), ' ', input);
  };
  const date = h('input', { id: 'trigger-date', name: 'date', type: 'date' });
  const dialog = h('dialog', { class: 'trigger', 'aria-labelledby': 'trigger-title' },
    h('form', { method: 'dialog' },
      h('h2', { id: 'trigger-title' }, `Trigger ${dag.id}`),
      params.length ? h('fieldset', {}, h('legend', {}, 'Params'), params.map(field)) : h('p', { class: 'muted' }, 'This DAG has no params.'),
      h('label', { for: 'trigger-date' }, 'Logical date (empty: now, in UTC) ', date),
      h('div', { class: 'row' },
        h('button', { value: 'cancel', type: 'submit', class: 'quiet' }, 'Cancel'),
        h('button', { value: 'trigger', type: 'submit', id: 'trigger-submit' }, 'Trigger'))));
  dialog.addEventListener('close', async () => {
    const values = {};
    for (const [name, value] of params) {
      const input = dialog.querySelector(`[name="${name}"]`);
      if (typeof value === 'boolean') values[name] = input.checked;
      else if (typeof value === 'number') values[name] = Number(input.value);
      else values[name] = input.value;
    }
    dialog.remove();
    if (dialog.returnValue !== 'trigger') return;
    const body = { params: values };
    if (date.value) body.date = date.value;
    let up = 1;
    try { up = (await api('/api/status')).schedulers.filter((x) => x.status === 'up').length; } catch (_) { /* said by the header */ }
    act(`/api/dags/${enc(dag.id)}/trigger`, body, (r) => (up
      ? `Queued run ${r.run_id}; the scheduler starts it.`
      : `Queued run ${r.run_id}, but no scheduler is running on this database: it waits until one starts (\`vane scheduler\`).`));
  });
  document.body.append(dialog);
  dialog.showModal();
}

// Rows are the DAG's tasks, then tasks only older runs had (renamed or removed since).
function gridTasks(dag) {
  const ids = (dag.task_list || []).map((t) => t.id);
  for (const run of dag.runs) for (const t of Object.keys(run.tasks)) if (!ids.includes(t)) ids.push(t);
  return ids;
}

function dagGrid(dag) {
  const runs = dag.runs.slice().reverse();
  if (!runs.length) return panel(empty('No runs yet.'));
  const tasks = gridTasks(dag);
  const headRow = h('tr', {}, h('th', {}, ''), runs.map((r) => h('th', {},
    h('a', {
      class: `run-bar state-${r.state}`, href: `#/runs/${r.id}`,
      title: `run ${r.id}: ${r.state}\n${logical(r.logical_date)}\n${r.trigger}, ${duration(between(r.started_at, r.ended_at))}`,
    }))));
  const rows = tasks.map((t) => h('tr', { 'data-task': t }, h('th', { class: 'task' }, t), runs.map((r) => {
    const cell = r.tasks[t];
    if (!cell) return h('td', {}, h('span', { class: 'cell', title: `${t}: not in run ${r.id}` }));
    const tip = `${t} · run ${r.id}: ${cell.state}\n${cell.attempts} attempt${cell.attempts === 1 ? '' : 's'}, ${duration(between(cell.started_at, cell.ended_at))}`;
    return h('td', {}, cell.attempts
      ? h('a', { class: `cell state-${cell.state}`, href: `#/runs/${r.id}/tasks/${enc(t)}/${cell.attempts}`, title: tip, 'data-run': r.id })
      : h('span', { class: `cell state-${cell.state}`, title: tip, 'data-run': r.id }));
  })));
  return h('div', {},
    panel(h('table', { class: 'grid' }, h('thead', {}, headRow), h('tbody', {}, rows)), legend()),
    h('h2', {}, 'Runs'), panel(runsTable(dag.runs, false)));
}

function legend() {
  return h('div', { class: 'legend' }, ['success', 'failed', 'running', 'queued', 'upstream_failed', 'skipped'].map((st) =>
    h('span', {}, h('span', { class: `dot state-${st}` }), label(st))));
}

// Layered drawing: a task's column is the longest path to it from a root; within a column,
// tasks sit near the mean row of their upstream tasks, which keeps most edges short.
// Layers as Airflow's and Dagster's graph views draw them (Sugiyama's method, simply): a
// task's column is its depth; an edge that spans columns gets a placeholder in each column it
// crosses, which takes a row there like a task, so the edge runs through the gap it holds and
// never through a task between. Rows follow the mean row of what comes in.
function layout(tasks) {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const column = new Map();
  const depth = (t) => {
    if (column.has(t.id)) return column.get(t.id);
    column.set(t.id, 0);
    const d = Math.max(-1, ...t.upstream.map((u) => (byId.has(u) ? depth(byId.get(u)) : -1))) + 1;
    column.set(t.id, d);
    return d;
  };
  tasks.forEach(depth);
  // What comes into each item (task or placeholder), and the placeholders of each long edge.
  const incoming = new Map(tasks.map((t) => [t.id, []]));
  const chains = new Map();
  for (const t of tasks) {
    for (const u of t.upstream.filter((x) => byId.has(x))) {
      let prev = u;
      const chain = [];
      for (let c = column.get(u) + 1; c < column.get(t.id); c += 1) {
        const id = `${u}\u2192${t.id}#${c}`;
        column.set(id, c);
        incoming.set(id, [prev]);
        chain.push(id);
        prev = id;
      }
      incoming.get(t.id).push(prev);
      chains.set(`${u}\u2192${t.id}`, chain);
    }
  }
  const columns = [];
  for (const id of incoming.keys()) (columns[column.get(id)] ||= []).push(id);
  const row = new Map();
  columns.forEach((col) => {
    const mean = (id) => {
      const ups = incoming.get(id).filter((u) => row.has(u)).map((u) => row.get(u));
      return ups.length ? ups.reduce((a, b) => a + b, 0) / ups.length : Infinity;
    };
    col.sort((a, b) => mean(a) - mean(b));
    col.forEach((id, i) => row.set(id, i));
  });
  return { columns, column, row, chains };
}

function dagGraph(dag) {
  const tasks = dag.task_list || [];
  if (!tasks.length) return panel(empty('The DAG file does not validate, so there is no graph to draw.'));
  const runs = dag.runs;
  const chosen = Number(new URLSearchParams(location.hash.split('?')[1] || '').get('run')) || (runs[0] && runs[0].id);
  const run = runs.find((r) => r.id === chosen);
  const { columns, column, row, chains } = layout(tasks);
  const W = 150; const H = 40; const GX = 40; const GY = 16;
  const width = columns.length * (W + GX) + 20;
  const height = Math.max(...columns.map((c) => c.length)) * (H + GY) + 20;
  const x = (t) => 10 + column.get(t) * (W + GX);
  const y = (t) => 10 + row.get(t) * (H + GY);
  // Through the gap each placeholder holds: across its column straight, curving between.
  const edges = tasks.flatMap((t) => t.upstream.filter((u) => column.has(u)).map((u) => {
    const points = [[x(u) + W, y(u) + H / 2]];
    for (const v of chains.get(`${u}\u2192${t.id}`) || []) points.push([x(v), y(v) + H / 2], [x(v) + W, y(v) + H / 2]);
    points.push([x(t.id), y(t.id) + H / 2]);
    let d = `M${points[0][0]},${points[0][1]}`;
    for (let i = 1; i < points.length; i += 1) {
      const [xa, ya] = points[i - 1]; const [xb, yb] = points[i];
      const mid = (xa + xb) / 2;
      d += i % 2 ? ` C${mid},${ya} ${mid},${yb} ${xb},${yb}` : ` L${xb},${yb}`;
    }
    return s('path', { class: 'edge', d, 'marker-end': 'url(#arrow)', 'data-from': u, 'data-to': t.id });
  }));
  const nodes = tasks.map((t) => {
    const cell = run && run.tasks[t.id];
    const state = cell ? cell.state : 'none';
    const node = s('g', { class: `node state-${state}`, transform: `translate(${x(t.id)},${y(t.id)})`, 'data-task': t.id },
      s('title', {}, `${t.id} (${t.kind})${cell ? `: ${cell.state}` : ''}${t.description ? `\n${t.description}` : ''}`),
      s('rect', { width: W, height: H, rx: 6 }),
      s('text', { x: 10, y: 17 }, t.id.length > 19 ? `${t.id.slice(0, 18)}…` : t.id),
      s('text', { x: 10, y: 32, class: 'kind' }, [t.kind, cell ? label(cell.state) : null].filter(Boolean).join(' · ')));
    if (run && cell && cell.attempts) {
      node.addEventListener('click', () => { location.hash = `#/runs/${run.id}/tasks/${enc(t.id)}/${cell.attempts}`; });
    }
    return node;
  });
  const svg = s('svg', { class: 'graph', width, height, viewBox: `0 0 ${width} ${height}` },
    s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      s('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#94a3b8' }))),
    edges, nodes);
  const picker = runs.length ? h('div', { class: 'row' }, 'States of run ',
    h('select', {
      'aria-label': 'run whose task states the graph shows',
      onchange: (e) => { location.hash = `#/dags/${enc(dag.id)}/graph?run=${e.target.value}`; },
    }, runs.map((r) => h('option', { value: r.id, selected: r.id === chosen }, `#${r.id} ${r.state} · ${logical(r.logical_date)}`)))) : empty('No runs yet: the graph shows the tasks only.');
  return h('div', {}, panel(picker, svg, legend()));
}

// Series of numbers over runs, drawn as a line with one dot per run colored by its status;
// `bound` ("<= 0.2", ">= 1", "[0.1, 0.5]") is drawn as a dashed line or a green band.
function chart(points, bound) {
  const W = 360; const H = 130; const L = 46; const R = 10; const T = 10; const B = 22;
  const values = points.map((p) => p.value).filter((v) => typeof v === 'number');
  const limits = parseBound(bound);
  const all = values.concat(limits.filter((v) => Number.isFinite(v)));
  if (!values.length) return h('p', { class: 'empty' }, 'No numbers to chart.');
  let lo = Math.min(...all); let hi = Math.max(...all);
  if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const px = (i) => L + (points.length === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (points.length - 1));
  const py = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  const parts = [s('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
    s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
    s('text', { x: L - 4, y: py(hi - pad) + 4, 'text-anchor': 'end' }, number(hi - pad)),
    s('text', { x: L - 4, y: py(lo + pad) + 4, 'text-anchor': 'end' }, number(lo + pad))];
  if (limits.length === 2) {
    const [a, b] = limits;
    const top = py(Math.min(b, hi)); const bottom = py(Math.max(a, lo));
    parts.unshift(s('rect', { class: 'band', x: L, y: top, width: W - L - R, height: Math.max(0, bottom - top) }));
  } else if (limits.length === 1) {
    parts.push(s('line', { class: 'bound', x1: L, x2: W - R, y1: py(limits[0]), y2: py(limits[0]) }));
  }
  // A point without a value breaks the line: the next one starts a new piece (`M`), so the
  // path never begins with `L`.
  let pen = 'M';
  const line = points.map((p, i) => {
    if (typeof p.value !== 'number') { pen = 'M'; return ''; }
    const piece = `${pen}${px(i)},${py(p.value)}`;
    pen = 'L';
    return piece;
  }).filter(Boolean).join(' ');
  parts.push(s('path', { class: 'series', d: line }));
  points.forEach((p, i) => {
    if (typeof p.value !== 'number') return;
    parts.push(s('circle', { cx: px(i), cy: py(p.value), r: 4, class: `state-${p.state}` }, s('title', {}, p.title)));
  });
  if (points.length) {
    parts.push(s('text', { x: L, y: H - 6 }, points[0].label));
    parts.push(s('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, points[points.length - 1].label));
  }
  return s('svg', { class: 'chart', width: W, height: H, viewBox: `0 0 ${W} ${H}` }, parts);
}

function parseBound(bound) {
  if (!bound) return [];
  let m = /^\[\s*(-?[\d.eE+-]+)\s*,\s*(-?[\d.eE+-]+)\s*\]$/.exec(bound);
  if (m) return [Number(m[1]), Number(m[2])];
  m = /^(?:<=|>=|<|>|=)\s*(-?[\d.eE+-]+)$/.exec(bound);
  return m ? [Number(m[1])] : [];
}

async function dagChecks(id) {
  const history = await api(`/api/dags/${enc(id)}/checks?last=30`);
  if (!history.length) return panel(empty('This DAG has no data checks yet (tasks of kind = "validate"), or none has run.'));
  const series = new Map();
  for (const c of history) {
    const key = `${c.task_id} · ${c.check}`;
    if (!series.has(key)) series.set(key, []);
    series.get(key).push(c);
  }
  for (const list of series.values()) list.sort((a, b) => a.run_id - b.run_id || a.attempt - b.attempt);
  const failing = [...series.values()].filter((l) => ['fail', 'warn'].includes(l[l.length - 1].status)).length;
  const urgency = { fail: 0, warn: 1 };
  const ordered = [...series.entries()].sort(([, a], [, b]) => (urgency[a[a.length - 1].status] ?? 2) - (urgency[b[b.length - 1].status] ?? 2));
  const boxes = ordered.map(([key, list]) => {
    const last = list[list.length - 1];
    const points = list.map((c) => ({
      value: c.observed, state: c.status, label: `run ${c.run_id}`,
      title: `run ${c.run_id}: ${c.status}, observed ${number(c.observed)}${c.bound ? `, bound ${c.bound}` : ''}\n${c.detail || ''}`,
    }));
    return h('div', { class: 'panel chart-box', 'data-check': key },
      h('div', { class: 'row' }, h('h2', { class: 'small' }, key), badge(last.status), last.severity === 'warn' ? h('span', { class: 'muted' }, 'warn only') : null),
      chart(points, last.bound),
      h('div', { class: 'detail' }, `latest: ${number(last.observed)}`, last.bound ? ` · bound ${last.bound}` : '', ` · ${last.derivation}`),
      last.detail ? h('div', { class: 'detail' }, last.detail) : null,
      (last.offending_rows || []).length ? h('div', { class: 'detail' }, `offending rows: ${last.offending_rows.slice(0, 10).map((r) => (typeof r === 'object' ? JSON.stringify(r) : r)).join(', ')}`) : null);
  });
  return h('div', {}, h('p', { class: 'sub' }, `${series.size} checks over the last 30 evaluations; ${failing} failing or warning now. A dot per run: green passed, red failed, amber warned, grey learning.`),
    h('div', { class: 'charts' }, boxes));
}

async function dagMetrics(id) {
  const points = await api(`/api/dags/${enc(id)}/metrics?last=30`);
  const own = points.filter((p) => !p.name.startsWith('check.'));
  if (!own.length) return panel(empty('No task of this DAG reported numbers yet (write `name value` lines to $VANE_METRICS).'));
  const series = new Map();
  for (const p of own) {
    const key = `${p.task} · ${p.name}`;
    if (!series.has(key)) series.set(key, []);
    series.get(key).push(p);
  }
  return h('div', { class: 'charts' }, [...series.entries()].map(([key, list]) => {
    list.sort((a, b) => a.run_id - b.run_id || a.attempt - b.attempt);
    const last = list[list.length - 1];
    return h('div', { class: 'panel chart-box', 'data-metric': key }, h('h2', { class: 'small' }, key),
      chart(list.map((p) => ({ value: p.value, state: p.run_state, label: `run ${p.run_id}`, title: `run ${p.run_id} (${p.run_state}): ${number(p.value)}` })), null),
      h('div', { class: 'detail' }, `latest ${number(last.value)} (run ${last.run_id})`));
  }));
}

// ---- pages: a run and an attempt ------------------------------------------------------

async function pageRun(id) {
  const run = await api(`/api/runs/${id}`);
  const finished = ['success', 'failed'].includes(run.state);
  // The first question about a finished run is what differs from the last good one: asked
  // here, so the answer is at the top of the page (the same as `vane why`).
  const why = finished ? await api(`/api/runs/${id}/why`).catch(() => null) : null;
  const anyFailed = run.tasks.some((t) => ['failed', 'upstream_failed'].includes(t.state));
  const rows = run.tasks.map((t) => {
    const last = t.attempts[t.attempts.length - 1];
    return h('tr', { 'data-task': t.id },
      h('td', {}, last ? link(`#/runs/${run.id}/tasks/${enc(t.id)}/${last.attempt}`, t.id) : t.id),
      h('td', {}, badge(t.state)),
      h('td', {}, t.attempts.map((a) => [link(`#/runs/${run.id}/tasks/${enc(t.id)}/${a.attempt}`, `#${a.attempt}`), ' '])),
      h('td', { class: 'num' }, last ? duration(between(last.started_at, last.ended_at)) : '–'),
      h('td', { class: 'num' }, last && last.exit_code !== null ? last.exit_code : (last && last.signal) || '–'),
      h('td', {}, t.reason || (last && last.reason) || ''));
  });
  return h('div', {},
    h('div', { class: 'row' }, h('h1', {}, `Run ${run.id}`), runBadge(run), h('span', { class: 'spacer' }),
      finished && anyFailed ? h('button', { type: 'button', onclick: () => act(`/api/runs/${run.id}/clear`, { failed_only: true }, `Cleared the failed tasks of run ${run.id}: the scheduler runs them again.`) }, 'Clear failed tasks') : null,
      finished ? h('button', { type: 'button', class: 'quiet', onclick: () => act(`/api/runs/${run.id}/clear`, {}, `Cleared run ${run.id}: the scheduler runs every task again.`) }, 'Clear all') : null,
      !finished && !run.stop_requested ? h('button', { type: 'button', class: 'danger', onclick: () => act(`/api/runs/${run.id}/stop`, {}, (r) => r.state === 'failed' ? `Stopped run ${run.id}.` : `Asked run ${run.id} to stop: its running tasks are killed within seconds.`) }, 'Stop') : null),
    h('p', { class: 'sub' }, link(`#/dags/${enc(run.dag_id)}`, run.dag_id), ` · ${run.trigger} run for ${logical(run.logical_date)}`),
    why ? whyPanel(why) : null,
    run.waiting_for_approval ? waitingPanel({ run_id: run.id, ...run.waiting_for_approval }) : null,
    (run.dispatched || []).length ? panel(h('strong', {}, 'On agents: '),
      run.dispatched.map((d) => h('div', { 'data-dispatched': d.task_id }, h('code', {}, d.task_id), ` attempt ${d.attempt} ${d.detail}`)),
      h('div', {}, link('#/agents', 'See the agents.'))) : null,
    run.reason ? panel(h('strong', {}, 'Why: '), run.reason) : null,
    run.stop_requested && !finished ? panel(h('strong', {}, 'Stopping: '), `asked by ${run.stop_requested.by}${run.stop_requested.reason ? `: ${run.stop_requested.reason}` : ''}`) : null,
    panel(kv([
      ['Queued', when(run.queued_at)], ['Started', when(run.started_at)], ['Ended', when(run.ended_at)],
      ['Duration', duration(between(run.started_at, run.ended_at))],
      ['DAG version', run.dag_version ? `v${run.dag_version.id} (${String(run.dag_version.hash).slice(0, 12)})` : null],
      ['Git', run.git && run.git.commit ? `${run.git.commit.slice(0, 12)}${run.git.dirty ? ' (uncommitted changes)' : ''}` : null],
      ['Host', run.host],
      ['Params', Object.keys(run.params || {}).length ? h('code', {}, JSON.stringify(run.params)) : null]])),
    h('h2', {}, 'Tasks'),
    panel(table(['Task', 'State', 'Attempts', 'Duration', 'Exit', 'Why'], rows)));
}

function whyPanel(why) {
  const against = why.against
    ? h('span', {}, 'Compared with ', link(`#/runs/${why.against.id}`, `run ${why.against.id}`), why.chosen.replace(/^run \d+/, ''), '.')
    : `Compared with ${why.chosen}.`;
  const items = why.differences.map((d) => h('li', { 'data-kind': d.kind },
    d.summary,
    d.detail.length ? h('details', {}, h('summary', {}, d.kind === 'dag_file' ? 'the diff' : 'the numbers'), h('pre', { class: 'why-detail' }, d.detail.join('\n'))) : null));
  return h('section', { class: 'panel why', 'aria-label': 'Why' },
    h('h2', { class: 'small' }, 'What is different from the last good run'),
    h('p', { class: 'lead' }, h('strong', {}, why.lead.summary)),
    h('p', { class: 'sub' }, against),
    why.against && items.length ? h('ol', {}, items) : null,
    why.against && !items.length ? h('p', {}, 'Nothing vane records differs between the two runs.') : null,
    why.equal_kinds.length ? h('p', { class: 'sub' }, `Equal: ${why.equal_kinds.join(', ')}.`) : null,
    why.not_compared.length ? h('p', { class: 'sub' }, `Not compared yet: ${why.not_compared.join('; ')}.`) : null);
}

async function pageAttempt(runId, task, number_) {
  const run = await api(`/api/runs/${runId}`);
  const t = run.tasks.find((x) => x.id === task);
  if (!t) throw new Error(`run ${runId} has no task ${task}`);
  const n = Number(number_);
  const a = t.attempts.find((x) => x.attempt === n);
  if (!a) throw new Error(`task ${task} of run ${runId} has no attempt ${n}`);
  const metrics = Object.entries(a.metrics || {});
  const path = `#/runs/${runId}/tasks/${enc(task)}/${n}`;
  const log = logBox(runId, task, n, a.state === 'running', path);
  return h('div', {},
    h('div', { class: 'row' }, h('h1', {}, `${task}`), badge(a.state), h('span', { class: 'muted' }, `attempt ${n} of ${t.attempts.length}`),
      t.attempts.length > 1 ? h('span', {}, t.attempts.map((x) => [' ', x.attempt === n ? h('strong', {}, `#${x.attempt}`) : link(`#/runs/${runId}/tasks/${enc(task)}/${x.attempt}`, `#${x.attempt}`)])) : null),
    h('p', { class: 'sub' }, link(`#/dags/${enc(run.dag_id)}`, run.dag_id), ' · ', link(`#/runs/${runId}`, `run ${runId}`), ` for ${logical(run.logical_date)}`),
    a.reason ? panel(h('strong', {}, 'Why: '), a.reason) : null,
    panel(kv([
      ['Started', when(a.started_at)], ['Ended', a.ended_at ? when(a.ended_at) : 'still running'],
      ['Duration', duration(between(a.started_at, a.ended_at))],
      ['Exit code', a.exit_code !== null ? String(a.exit_code) : (a.signal ? `killed by ${a.signal}` : '–')],
      ['Host', a.host ? `${a.host}, pid ${a.pid}` : null],
      ['Kind', t.kind || null],
      ['Command', t.kind === 'validate' || t.kind === 'deploy' ? `built in: vane runs the ${t.kind} step itself` : h('code', {}, a.command)],
      ['DAG version', `v${a.dag_version}`],
      ['Params', Object.keys(run.params || {}).length ? h('code', {}, JSON.stringify(run.params)) : '(none)']])),
    // The log before the numbers: a long metrics table must not push why it failed out of view.
    h('h2', {}, a.state === 'running' ? 'Log (live)' : 'Log'),
    log,
    h('h2', {}, 'Metrics'),
    panel(metricsTable(metrics)));
}

// Up to 8 numbers shown; more fold into a summary a click opens.
function metricsTable(metrics) {
  if (!metrics.length) return empty('This attempt reported no numbers.');
  const rows = metrics.map(([k, v]) => h('tr', {}, h('td', {}, h('code', {}, k)), h('td', { class: 'num' }, number(v))));
  const shown = table(['Name', 'Value'], rows, { class: 'metrics' });
  if (metrics.length <= 8) return shown;
  return h('details', {}, h('summary', {}, `${metrics.length} numbers`), shown);
}

// The log box survives redraws of its page: it is fetched once, and followed while the
// attempt runs, so a person reading it never loses their place.
const logs = new Map();
function logBox(runId, task, n, running, key) {
  const path = decodeURI(key.replace(/^#/, ''));
  const cached = logs.get(path);
  if (cached && keep.key === path) return cached;
  // Focusable, so a keyboard reaches and scrolls it.
  const pre = h('pre', { class: 'log', tabindex: '0', 'aria-label': `log of ${task} attempt ${n}` }, 'loading the log…');
  logs.clear();
  logs.set(path, pre);
  const controller = new AbortController();
  if (keep.stop) keep.stop();
  keep = { key: path, stop: () => controller.abort() };
  const url = `/api/runs/${runId}/tasks/${enc(task)}/logs?attempt=${n}${running ? '&follow=1' : ''}`;
  (async () => {
    try {
      const response = await fetch(url, { headers: authHeaders(), signal: controller.signal });
      if (!response.ok) { pre.textContent = (await answer(response).catch((e) => e.message)) || ''; return; }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      pre.textContent = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(decoder.decode(value, { stream: true }));
        if (follow) pre.scrollTop = pre.scrollHeight;
      }
      if (!pre.textContent) pre.textContent = '(the log is empty)';
    } catch (error) {
      if (error.name !== 'AbortError') pre.append(`\n[log stream ended: ${error.message}]`);
    }
  })();
  return pre;
}

// ---- pages: models --------------------------------------------------------------------

async function pageModels() {
  const all = await api('/api/models');
  const names = [...new Set(all.versions.map((v) => v.model))].sort();
  const rows = names.map((name) => {
    const versions = all.versions.filter((v) => v.model === name);
    const production = versions.find((v) => v.stage === 'production');
    const waiting = all.waiting.filter((w) => w.model === name);
    const latest = versions.reduce((a, b) => (a.version > b.version ? a : b));
    return h('tr', { 'data-model': name },
      h('td', {}, link(`#/models/${enc(name)}`, h('strong', {}, name))),
      h('td', {}, production ? [`v${production.version} `, h('span', { class: 'muted' }, ['since ', timeEl(production.since)])] : h('span', { class: 'muted' }, 'none')),
      h('td', {}, `v${latest.version} `, badge(latest.stage)),
      h('td', {}, versions.length),
      h('td', {}, waiting.length ? h('span', { class: 'badge state-queued' }, `${waiting.length} waiting for approval`) : '–'));
  });
  return h('div', {}, h('h1', {}, 'Models'), h('p', { class: 'sub' }, 'What is in production, and what is on its way there.'),
    panel(names.length ? table(['Model', 'In production', 'Newest version', 'Versions', 'Rollouts'], rows) : empty('No model registered yet: a task of kind = "deploy" registers its model when it runs.')));
}

async function pageModel(name) {
  const m = await api(`/api/models/${enc(name)}`);
  const versions = m.versions.slice().sort((a, b) => b.version - a.version);
  const waiting = m.waiting.map((w) => waitingPanel(w));
  const production = versions.find((v) => v.stage === 'production');
  const ledger = m.ledger.slice().sort((a, b) => b.id - a.id);
  const rollbackForm = production ? rollback(name, versions) : null;
  return h('div', {},
    h('div', { class: 'row' }, h('h1', {}, name), production ? badge('production', `v${production.version} in production`) : null),
    h('p', { class: 'sub' }, 'Versions, the stage each is in, and every promotion and rollback with the numbers the gates saw.'),
    waiting,
    h('h2', {}, 'Versions'),
    panel(table(['Version', 'Stage', 'Since', 'By', 'Run', 'Content'], versions.map((v) => h('tr', { 'data-version': v.version },
      h('td', {}, `v${v.version}`), h('td', {}, badge(v.stage)), h('td', {}, timeEl(v.since)), h('td', {}, v.actor || '–'),
      h('td', {}, v.run_id ? link(`#/runs/${v.run_id}`, `#${v.run_id}`) : '–'),
      h('td', { class: 'mono', title: v.stored || '' }, String(v.hash || '').slice(0, 12)))))),
    rollbackForm,
    h('h2', {}, 'Timeline'),
    panel(ledger.length ? h('ul', { class: 'timeline' }, ledger.map(ledgerEntry)) : empty('Nothing recorded yet.')));
}

function ledgerEntry(e) {
  const gates = (e.evidence && e.evidence.gates) || [];
  return h('li', { class: `to-${e.to_stage}` },
    h('div', {}, h('strong', {}, `v${e.version}`), ` ${e.from_stage || 'new'} → `, badge(e.to_stage), ' ',
      h('span', { class: 'when' }, `${when(e.at)} · ${e.actor}`), e.run_id ? [' · ', link(`#/runs/${e.run_id}`, `run ${e.run_id}`)] : null),
    e.reason ? h('div', {}, e.reason) : null,
    gates.length ? h('ul', { class: 'gates' }, gates.map((g) => h('li', { class: g.status }, `${g.status}: ${g.detail || g.gate}`))) : null,
    e.evidence && e.evidence.approved_by ? h('div', { class: 'muted' }, `approved by ${e.evidence.approved_by}`) : null);
}

// A run waiting for a person's approval is `running` to the engine, but stuck to a person.
function runBadge(run) {
  if (!run.waiting_for_approval) return badge(run.state);
  return h('span', { class: 'badge state-queued', title: run.waiting_for_approval.detail || '' },
    `waiting for approval · ${run.waiting_for_approval.stage}`);
}

function waitingPanel(w) {
  const reason = h('input', { type: 'text', placeholder: 'why (needed to reject)', size: 30 });
  return h('div', { class: 'panel waiting' },
    h('div', { class: 'row' }, h('strong', {}, `Run ${w.run_id} waits at stage ${w.stage}`), ` for v${w.version}`,
      h('span', { class: 'spacer' }),
      h('button', { type: 'button', onclick: () => act(`/api/runs/${w.run_id}/approve`, { stage: w.stage }, `Approved ${w.stage} of run ${w.run_id}.`) }, 'Approve'),
      reason,
      h('button', {
        type: 'button', class: 'danger',
        onclick: () => (reason.value.trim() ? act(`/api/runs/${w.run_id}/reject`, { stage: w.stage, reason: reason.value.trim() }, `Rejected run ${w.run_id}; it rolls back.`) : say('Say why you reject it: the ledger records it.')),
      }, 'Reject')),
    w.detail ? h('div', { class: 'muted' }, w.detail) : null,
    w.evidence ? h('ul', { class: 'gates' }, ((w.evidence.gates) || []).map((g) => h('li', { class: g.status }, `${g.status}: ${g.detail || g.gate}`))) : null);
}

function rollback(name, versions) {
  const reason = h('input', { type: 'text', placeholder: 'why', size: 36 });
  const choices = versions.filter((v) => ['archived', 'production'].includes(v.stage));
  const to = h('select', { 'aria-label': 'version to roll back to' }, h('option', { value: '' }, 'the previous production version'),
    choices.map((v) => h('option', { value: v.version }, `v${v.version} (${v.stage})`)));
  return panel(h('div', { class: 'row' }, h('strong', {}, 'Roll back to'), to, reason,
    h('button', {
      type: 'button', class: 'danger',
      onclick: () => {
        if (!reason.value.trim()) { say('Say why you roll back: the ledger records it.'); return; }
        const body = { reason: reason.value.trim() };
        if (to.value) body.to = Number(to.value);
        act(`/api/models/${enc(name)}/rollback`, body, `Rolled ${name} back.`);
      },
    }, 'Roll back')));
}

// ---- pages: alerts --------------------------------------------------------------------

// ---- pages: agents --------------------------------------------------------------------

async function pageAgents() {
  const { agents, waiting } = await api('/api/agents');
  const rows = agents.map((a) => h('tr', { 'data-agent': a.host },
    h('td', {}, h('strong', {}, a.host), h('div', { class: 'muted' }, `pid ${a.pid}`)),
    h('td', {}, Object.keys(a.labels).length ? Object.entries(a.labels).map(([k, v]) => h('code', {}, `${k}=${v} `)) : h('span', { class: 'muted' }, 'no labels')),
    h('td', { class: 'num' }, `${a.running}/${a.slots}`),
    h('td', {}, timeEl(a.last_heartbeat)),
    h('td', {}, badge(a.state === 'held' ? 'running' : 'failed'), ' ', a.state)));
  const waits = waiting.map((w) => h('tr', { 'data-waiting': w.task_id },
    h('td', {}, link(`#/runs/${w.run_id}`, `#${w.run_id}`)), h('td', {}, w.task_id),
    h('td', {}, h('code', {}, Object.entries(w.needs).map(([k, v]) => `${k}=${v}`).join(',') || '(any)')),
    h('td', {}, timeEl(w.since)), h('td', {}, w.why)));
  return h('div', {}, h('h1', {}, 'Agents'),
    h('p', { class: 'sub' }, 'Hosts running tasks by their labels (`vane agent --labels ...`), and the attempts waiting for one.'),
    panel(agents.length ? table(['Host', 'Labels', 'Running', 'Last heartbeat', 'State'], rows)
      : empty('No agent has joined this database. Start one with `vane agent --labels NAME=VALUE` on a worker host.')),
    h('h2', {}, 'Waiting for an agent'),
    panel(waiting.length ? table(['Run', 'Task', 'Needs', 'Since', 'Why'], waits) : empty('No attempt is waiting for an agent.')));
}

async function pageAlerts(all) {
  const [alerts, stats, oncall] = await Promise.all([
    api(`/api/alerts${all ? '?all=1' : ''}`), api('/api/alerts/stats'), api('/api/oncall?turns=6'),
  ]);
  const rank = { critical: 0, warning: 1, info: 2 };
  alerts.sort((a, b) => (a.state === 'open' ? 0 : 1) - (b.state === 'open' ? 0 : 1) || rank[a.severity] - rank[b.severity] || b.id - a.id);
  const rows = alerts.map((a) => {
    const snoozed = a.snoozed_until && new Date(a.snoozed_until) > new Date();
    const snooze = h('select', { 'aria-label': 'snooze for' }, [['1h', 3600], ['4h', 14400], ['1d', 86400], ['7d', 604800]].map(([label, seconds]) => h('option', { value: seconds }, label)));
    return h('tr', { 'data-alert': a.id },
      h('td', {}, `#${a.id}`),
      h('td', {}, sev(a.severity)),
      h('td', {}, h('div', {}, h('strong', {}, a.summary)),
        h('div', { class: 'muted' }, a.rule, ' · ', link(`#/dags/${enc(a.dag)}`, a.dag), a.task ? `.${a.task}` : '', a.subject ? ` · ${a.subject}` : '',
          a.last_run ? [' · ', link(`#/runs/${a.last_run}`, `run ${a.last_run}`)] : '')),
      h('td', { class: 'num', title: 'times it happened while open' }, `×${a.count}`),
      h('td', {}, timeEl(a.last_seen), h('div', { class: 'muted' }, 'first ', timeEl(a.first_seen))),
      h('td', {}, badge(a.state), snoozed ? h('div', { class: 'muted' }, `snoozed until ${when(a.snoozed_until)}`) : null,
        a.delivery && a.delivery.state === 'pending' ? h('div', { title: a.delivery.last_error || '' }, `undelivered to ${a.delivery.channel} (${a.delivery.attempts} tries), retry ${when(a.delivery.retry_at)}`) : null,
        a.delivery && a.delivery.state === 'abandoned' ? h('div', { class: 'muted', title: a.delivery.why || '' }, `never delivered to ${a.delivery.channel}`) : null,
        a.acked_by ? h('div', { class: 'muted' }, `by ${a.acked_by}${a.verdict ? `, ${a.verdict}` : ''}`) : null),
      h('td', {}, a.state === 'resolved' ? null : h('div', { class: 'row' },
        a.state === 'open' ? [
          h('button', { type: 'button', title: 'acknowledge: it deserved attention', onclick: () => act(`/api/alerts/${a.id}/ack`, { verdict: 'real' }, `Alert ${a.id} acknowledged as real.`) }, 'Ack: real'),
          h('button', { type: 'button', class: 'quiet', title: 'acknowledge: it did not deserve attention (counts against its rule)', onclick: () => act(`/api/alerts/${a.id}/ack`, { verdict: 'noise' }, `Alert ${a.id} acknowledged as noise.`) }, 'Ack: noise')] : null,
        h('button', { type: 'button', class: 'quiet', onclick: () => act(`/api/alerts/${a.id}/resolve`, {}, `Alert ${a.id} resolved.`) }, 'Resolve'),
        snooze,
        h('button', { type: 'button', class: 'quiet', onclick: () => act(`/api/alerts/${a.id}/snooze`, { seconds: Number(snooze.value) }, (r) => `Alert ${r.id} snoozed until ${when(r.snoozed_until)}.`) }, 'Snooze'))));
  });
  const statRows = stats.map((st) => h('tr', { 'data-rule': st.rule },
    h('td', {}, h('code', {}, st.rule), st.suggestion ? h('div', { class: 'suggestion' }, st.suggestion) : null),
    h('td', {}, st.on), h('td', { class: 'num' }, st.fired), h('td', { class: 'num' }, st.occurrences),
    h('td', { class: 'num' }, st.real), h('td', { class: 'num' }, st.noise),
    h('td', { class: 'num' }, st.precision === null ? '–' : `${Math.round(st.precision * 100)}%`)));
  return h('div', {},
    h('div', { class: 'row' }, h('h1', {}, 'Alerts'), h('span', { class: 'spacer' }),
      all ? link('#/alerts', 'open only') : link('#/alerts/all', 'show resolved too')),
    h('p', { class: 'sub' }, 'One alert per DAG, task and reason, counting repeats. Say whether it was real when you acknowledge it: the rule statistics below learn from it.'),
    oncallPanel(oncall),
    panel(alerts.length ? table(['', 'Severity', 'What', 'Count', 'Last seen', 'State', ''], rows, { class: 'alerts' }) : empty(all ? 'No alerts recorded.' : 'No open alerts. All quiet.')),
    h('h2', {}, 'Rules: are they worth it?'),
    panel(stats.length ? table(['Rule', 'On', 'Alerts', 'Events', 'Real', 'Noise', 'Precision'], statRows, { class: 'stats' }) : empty('No rule has fired yet.')));
}

function oncallPanel(oncall) {
  if (!oncall.configured) return panel(h('span', { class: 'muted' }, 'No on-call rotation: add [alerts.oncall] to vane.toml to name who is paged.'));
  return panel(h('div', { class: 'oncall-now' }, 'On call now: ', h('strong', {}, oncall.now || 'nobody (the rotation has not started)'),
    h('span', { class: 'muted' }, ` · turns of ${oncall.every}`)),
  table(['Who', 'From', 'To'], oncall.turns.map((t, i) => h('tr', { class: i === 0 ? 'current' : null },
    h('td', {}, i === 0 ? h('strong', {}, t.person || '–') : (t.person || '–')), h('td', {}, when(t.from)), h('td', {}, when(t.to)))), { class: 'rotation' }));
}

// ---- start ----------------------------------------------------------------------------

// The link `vane serve` prints on loopback carries the token it made for this run
// (`#token=...`): kept in this browser, and taken out of the address bar and history.
function takeToken() {
  const found = /^#token=([0-9A-Za-z._~-]+)$/.exec(location.hash);
  if (!found) return false;
  localStorage.setItem('vane-token', found[1]);
  history.replaceState(null, '', `${location.pathname}#/`);
  return true;
}

document.getElementById('token-button').addEventListener('click', () => askToken(null));
window.addEventListener('hashchange', () => { takeToken(); render(); });
setInterval(tick, REFRESH_MS);
takeToken();
render();
