'use strict';
// `/users/<id>`: why a user is restricted. Features now, each restriction
// with its rule, version and event, aggregates beside the conditions that
// read them, the timeline of changes, and the admins' override form.

const HISTORY_PAGE = 200;

Pages.user = async function user(id) {
  document.title = `${id} · restrictd`;
  $('search-user').value = id;
  try {
    const enc = encodeURIComponent(id);
    const [report, history, rules] = await Promise.all([
      api(`/v1/users/${enc}`).catch((e) => { if (e.status === 404) return null; throw e; }),
      api(`/v1/users/${enc}/history?limit=${HISTORY_PAGE}`).catch((e) => { if (e.status === 404) return null; throw e; }),
      api('/v1/rules'),
    ]);
    $('auth').hidden = true;
    const heading = el('h1', {}, 'User ', el('span', { id: 'user-id', class: 'mono' }, id));
    if (!report) {
      show(heading, el('p', { id: 'never-seen' }, 'Never seen: every feature is allowed.'));
      status('user never seen');
      return drawn();
    }
    const versions = new Map((history ? history.changes : []).filter((c) => c.entry_id).map((c) => [`${c.rule}|${c.entry_id}`, c.version]));
    show(
      heading,
      el('p', { class: 'muted' }, `shard ${report.shard} · state from ${report.source}`),
      features(report),
      restrictions('Restrictions', 'restrictions', report.restrictions, versions),
      report.would_restrict.length ? restrictions('Shadow rules would restrict', 'would-restrict', report.would_restrict, versions) : null,
      aggregates(report, rules.rules),
      overrides(id, report),
      timeline(id, history),
      overrideForm(id, report),
    );
    status(`user ${report.shard}/${report.source} · ${when(Date.now())}`);
    drawn();
  } catch (e) {
    failed(e);
  }
};

function features(report) {
  const cause = (f) => {
    const o = report.overrides.find((x) => x.feature === f);
    if (o) return ['override by ', o.by, ': ', o.reason];
    const r = report.restrictions.find((x) => x.features.includes(f));
    return r ? ['rule ', ruleLink(r.rule)] : '—';
  };
  const rows = Object.entries(report.features).map(([f, ok]) => tr([f, badge(ok ? 'allowed' : 'restricted', ok ? 'allowed' : 'restricted'), el('span', {}, cause(f))], { id: `feature-${f}` }));
  return section('Features now', table('features', ['feature', 'now', 'why'], rows));
}

function restrictions(title, id, list, versions) {
  const rows = list.map((r) => tr([
    ruleLink(r.rule), r.features.join(', '), versionLink(versions.get(`${r.rule}|${r.event_id}`)),
    el('span', { class: 'mono' }, r.event_id), when(r.at_ms), r.expires_at_ms ? when(r.expires_at_ms) : 'until lifted',
  ], { class: 'restriction' }));
  return el('section', { class: 'wide' }, el('h2', {}, title),
    list.length ? table(id, ['rule', 'features', 'version', 'event', 'at', 'expires'], rows) : el('p', { class: 'muted' }, 'None.'));
}

/** Each aggregate with the conditions that read it. */
function aggregates(report, rules) {
  const readers = (name) => rules.filter((r) => new RegExp(`\\b${name}\\b`).test(r.when)).map((r) => el('div', {}, ruleLink(r.name), ': ', el('code', {}, r.when)));
  const rows = Object.entries(report.aggregates).map(([name, v]) => tr([name, String(v), readers(name)], { id: `aggregate-${name}` }));
  const windows = Object.entries(report.windows || {}).map(([name, w]) => tr([name, el('code', {}, JSON.stringify(w))]));
  return el('section', { class: 'wide' }, el('h2', {}, 'Aggregates and the conditions that read them'),
    table('aggregates', ['aggregate', 'value', 'compared in'], rows),
    windows.length ? table('windows', ['window', 'state'], windows) : null);
}

function overrides(id, report) {
  const rows = report.overrides.map((o) => {
    const out = el('span', {});
    const form = el('form', { onsubmit: (e) => { e.preventDefault(); adminAction(form, out, () => api(`/v1/users/${encodeURIComponent(id)}/features/${o.feature}`, { method: 'DELETE', admin: true }), () => Pages.user(id)); } },
      adminToken(), el('button', { type: 'submit' }, 'Remove'), ' ', out);
    return tr([o.feature, o.state, o.reason, o.by, when(o.at_ms), o.expires_at_ms ? when(o.expires_at_ms) : 'never', form]);
  });
  return rows.length ? el('section', { class: 'wide' }, el('h2', {}, 'Overrides'), table('overrides', ['feature', 'state', 'reason', 'by', 'at', 'expires', ''], rows)) : null;
}

function timeline(id, history) {
  const body = el('tbody', {});
  const more = el('button', { type: 'button', id: 'history-more', hidden: true }, 'Older changes');
  let next = 0;
  const add = (page) => {
    body.append(...page.changes.map((c) => tr([
      when(c.at_ms), badge(/fired|restrict|override_set/.test(c.change) ? 'restricted' : 'allowed', c.change), (c.features || []).join(', '),
      ruleLink(c.rule), versionLink(c.version), c.who, c.why, el('span', { class: 'mono' }, c.entry_id || '—'),
    ], { class: 'change' })));
    next = page.next_offset;
    more.hidden = next === null || next === undefined;
  };
  if (history) add(history);
  more.addEventListener('click', async () => {
    try { add(await api(`/v1/users/${encodeURIComponent(id)}/history?limit=${HISTORY_PAGE}&offset=${next}`)); } catch (e) { failed(e); }
  });
  const head = el('tr', {}, ['when', 'change', 'features', 'rule', 'version', 'who', 'why', 'event'].map((h) => el('th', { scope: 'col' }, h)));
  return el('section', { class: 'wide' }, el('h2', {}, 'Timeline, newest first'),
    el('div', { class: 'scroll' }, el('table', { id: 'history' }, el('thead', {}, head), body)), el('div', { class: 'pager' }, more));
}

/** Override or lift a feature (admins). */
function overrideForm(id, report) {
  const out = el('span', { id: 'override-result', role: 'status' });
  const feature = el('select', { id: 'override-feature' }, Object.keys(report.features).map((f) => el('option', { value: f }, f)));
  const state = el('select', { id: 'override-state' }, el('option', { value: 'allowed' }, 'allowed (lift)'), el('option', { value: 'restricted' }, 'restricted'));
  const reason = el('input', { id: 'override-reason', required: true, autocomplete: 'off' });
  const expires = el('input', { id: 'override-expires', placeholder: 'e.g. 7d; empty: never', autocomplete: 'off' });
  const form = el('form', { class: 'admin', id: 'override-form' },
    el('label', { for: 'override-feature' }, 'Feature'), feature,
    el('label', { for: 'override-state' }, 'Make it'), state,
    el('label', { for: 'override-reason' }, 'Reason'), reason,
    el('label', { for: 'override-expires' }, 'Expires in'), expires,
    adminToken(),
    el('div', { class: 'full' }, el('button', { type: 'submit' }, 'Override'), ' ', out));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = { state: state.value, reason: reason.value };
    if (expires.value.trim()) body.expires_in = expires.value.trim();
    const path = `/v1/users/${encodeURIComponent(id)}/features/${encodeURIComponent(feature.value)}`;
    adminAction(form, out, () => api(path, { method: 'PUT', body, admin: true }), () => waitForHistory(id));
  });
  return el('section', { class: 'wide' }, el('h2', {}, 'Override or lift (admins)'),
    el('p', { class: 'muted' }, 'An override beats every rule until it expires or is removed; the reason and your token\'s name are recorded.'), form);
}

/** After an override: the page again once the history shows it (written with the next snapshot). */
async function waitForHistory(id) {
  const before = document.querySelectorAll('#history tr.change').length;
  for (let i = 0; i < 40; i++) {
    const h = await api(`/v1/users/${encodeURIComponent(id)}/history?limit=${HISTORY_PAGE}`);
    if (h.changes.length > before || h.changes.length === HISTORY_PAGE) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return Pages.user(id);
}
