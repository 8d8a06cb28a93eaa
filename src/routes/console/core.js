'use strict';
// The console's shared parts: building the page, the API with its tokens,
// links between pages, and the router. Everything that came from outside
// (user ids, reasons, rule text) goes into the page as text, never as HTML.

const $ = (id) => document.getElementById(id);

/** An element with attributes (`text`: its text; `on<event>`: a listener) and children. */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(2)) {
    if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

/** A table with a header row; `rows` are `<tr>` elements. */
function table(id, headers, rows) {
  const head = el('tr', {}, headers.map((h) => el('th', { scope: 'col', class: h.endsWith('#') ? 'num' : null }, h.replace(/#$/, ''))));
  return el('div', { class: 'scroll' }, el('table', { id }, el('thead', {}, head), el('tbody', {}, rows)));
}

/** A row; numbers are right-aligned. */
function tr(cells, attrs = {}) {
  return el('tr', attrs, cells.map((c) => el('td', { class: typeof c === 'number' ? 'num' : null }, typeof c === 'number' ? c.toLocaleString('en') : c)));
}

function section(title, ...children) {
  return el('section', {}, el('h2', {}, title), ...children);
}

const when = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—');
const userHref = (id) => '/users/' + encodeURIComponent(id);
const userLink = (id) => el('a', { href: userHref(id), class: 'mono' }, id);
const ruleLink = (name) => (name ? el('a', { href: '/rules/' + encodeURIComponent(name) }, name) : '—');
const versionLink = (n) => (n ? el('a', { href: '/rules/versions/' + encodeURIComponent(n) }, `v${n}`) : '—');
const badge = (cls, text) => el('span', { class: `badge ${cls}` }, text);
const status = (text) => { $('status').textContent = text; };

// Tokens, kept for this tab only (sessionStorage). A read token handed in the
// address (#token=...) is taken and removed from the address.
const READ = 'restrictd.readToken';
const ADMIN = 'restrictd.adminToken';
const given = new URLSearchParams(location.hash.slice(1)).get('token');
if (given) {
  sessionStorage.setItem(READ, given);
  history.replaceState(null, '', location.pathname + location.search);
}

class Refused extends Error {
  constructor(status, message, admin) { super(message); this.status = status; this.admin = admin; }
}

/** Calls the API; `admin`: with the admin token. Throws `Refused` on 401/403. */
async function api(path, { method = 'GET', body, admin = false } = {}) {
  const token = sessionStorage.getItem(admin ? ADMIN : READ);
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (r.status === 401 || r.status === 403) throw new Refused(r.status, data.error || r.statusText, admin);
  if (!r.ok) {
    const e = new Error(data.error || `${path} answered ${r.status}`);
    e.status = r.status;
    throw e;
  }
  return data;
}

function askForToken(refused) {
  $('auth').hidden = false;
  $('auth-why').textContent = sessionStorage.getItem(READ)
    ? `The read token was refused (${refused.status}: ${refused.message}). Enter another.`
    : 'This instance requires a read token (auth.require_for_reads is on). Enter it to see the console.';
  status('needs a read token');
}

/** Shows what went wrong with a page's reads. */
function failed(e) {
  if (e instanceof Refused && !e.admin) askForToken(e);
  else status('unreachable: ' + e.message);
}

/** An admin action's form part: the admin token, asked once per tab. */
function adminToken() {
  if (sessionStorage.getItem(ADMIN)) return null;
  const id = 'admin-token-' + Math.random().toString(36).slice(2);
  return [el('label', { for: id }, 'Admin token'), el('input', { id, type: 'password', autocomplete: 'off', required: true, class: 'admin-token' })];
}

/** Runs an admin action from `form`; shows its outcome in `out`, then `after()`. */
async function adminAction(form, out, action, after) {
  const token = form.querySelector('.admin-token');
  if (token) sessionStorage.setItem(ADMIN, token.value);
  out.className = 'muted';
  out.textContent = 'sending…';
  try {
    await action();
    out.className = 'ok';
    out.textContent = 'done';
    if (after) await after();
  } catch (e) {
    if (e instanceof Refused) sessionStorage.removeItem(ADMIN);
    out.className = 'error';
    out.textContent = e instanceof Refused ? `the admin token was refused (${e.status}: ${e.message})` : e.message;
  }
}

// How long the page's data took to fetch and draw: `data-drawn-ms` on <body>.
let started = performance.now();
function drawn() {
  document.body.dataset.drawnMs = (performance.now() - started).toFixed(1);
  document.body.dataset.ready = 'true';
}

/** Replaces the page's content. */
function show(...children) {
  $('page').replaceChildren(...children.filter((c) => c !== null && c !== undefined));
}

$('search').addEventListener('submit', (e) => {
  e.preventDefault();
  const id = $('search-user').value.trim();
  if (id) location.assign(userHref(id));
});

// The router: /, /users/<id>, /rules/<name>, /rules/versions/<n>.
const Pages = {};
function route() {
  const path = location.pathname;
  const part = (prefix) => decodeURIComponent(path.slice(prefix.length));
  started = performance.now();
  if (path.startsWith('/rules/versions/')) return Pages.version(part('/rules/versions/'));
  if (path.startsWith('/users/')) return Pages.user(part('/users/'));
  if (path.startsWith('/rules/')) return Pages.rule(part('/rules/'));
  return Pages.overview();
}
$('auth-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(READ, $('auth-token').value);
  $('auth').hidden = true;
  route();
});
document.addEventListener('DOMContentLoaded', route);
