'use strict';
// `/rules/<name>`: what a rule is doing. Its definition and the version that
// last changed it, its decisions per minute with the tripwire's bound, the
// users it restricted in the tripwire window, the tripwire's controls, and
// the simulation of a candidate definition.

const USERS_PAGE = 50;

Pages.rule = async function rule(name) {
  document.title = `${name} · restrictd`;
  try {
    const enc = encodeURIComponent(name);
    const [rules, series, users] = await Promise.all([
      api('/v1/rules'),
      api(`/v1/timeseries?hours=24&rule=${enc}`).catch((e) => { if (e.status === 404) return null; throw e; }),
      api(`/v1/rules/${enc}/users?limit=${USERS_PAGE}`).catch((e) => { if (e.status === 404) return null; throw e; }),
    ]);
    $('auth').hidden = true;
    const r = rules.rules.find((x) => x.name === name);
    const heading = el('h1', {}, 'Rule ', el('span', { id: 'rule-name', class: 'mono' }, name));
    if (!r || !series) {
      show(heading, el('p', { id: 'no-rule' }, `No rule by this name in version ${rules.version}. `, el('a', { href: '/' }, 'Every rule')));
      return drawn();
    }
    const t = r.tripwire;
    show(
      heading,
      definition(r, rules.version),
      tripwire(name, t),
      el('section', { class: 'wide', id: 'rule-chart' }, el('h2', {}, 'Decisions per minute, the last 24 hours'), decisions(series, t)),
      restricted(name, users, t),
      simulation(name, rules.version),
    );
    status(`rule ${name} · version ${rules.version}`);
    drawn();
    lastChanged(name, rules.version).catch(() => {});
  } catch (e) {
    failed(e);
  }
};

function definition(r, version) {
  const t = r.tripwire;
  return section('Definition', el('dl', {},
    el('dt', {}, 'condition'), el('dd', {}, el('code', { id: 'rule-when' }, r.when)),
    el('dt', {}, 'on'), el('dd', {}, r.on.join(', ')),
    el('dt', {}, 'restricts'), el('dd', {}, r.restrict.join(', ')),
    el('dt', {}, 'mode'), el('dd', {}, badge(t.mode === 'shadow' ? 'shadow' : 'armed', t.mode)),
    el('dt', {}, 'description'), el('dd', {}, r.description || '—'),
    el('dt', {}, 'in version'), el('dd', {}, versionLink(version)),
    el('dt', {}, 'last changed in'), el('dd', { id: 'rule-changed' }, '…'),
  ));
}

/** The newest version that added or changed the rule (the last 50 versions). */
async function lastChanged(name, current) {
  const list = await api('/v1/rules/versions?limit=50');
  for (const v of list.versions) {
    const d = await api(`/v1/rules/versions/${v.version}`);
    const diff = d.diff || {};
    const touched = ['rules_added', 'rules_changed'].some((k) => (diff[k] || []).includes(name));
    if (touched || v.version === 1) {
      $('rule-changed').replaceChildren(versionLink(v.version), ` by ${d.by}, ${d.at}`, d.message ? ` — ${d.message}` : '');
      return;
    }
  }
  $('rule-changed').textContent = `before the ${list.versions.length} newest versions (current: v${current})`;
}

/** The tripwire's share of the population against its bound. */
function tripwire(name, t) {
  const bound = Math.max(t.min_restricted, Math.ceil(t.threshold * t.population));
  const share = bound ? Math.min(1, t.restricted_in_window / bound) : 0;
  const bar = el('div', { class: 'bar', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': bound, 'aria-valuenow': t.restricted_in_window, 'aria-label': 'restricted in the window against the trip bound' }, el('span', {}), el('i', {}));
  bar.firstChild.style.width = `${(share * 100).toFixed(1)}%`;
  bar.lastChild.style.left = 'calc(100% - 2px)';
  const out = el('span', { id: 'tripwire-result', role: 'status' });
  const apply = el('input', { type: 'checkbox', id: 'apply-suppressed' });
  const act = (action) => (e) => {
    e.preventDefault();
    const body = action === 'reset' && apply.checked ? { action, apply_suppressed: true } : { action };
    adminAction(form, out, () => api(`/v1/rules/${encodeURIComponent(name)}/tripwire`, { method: 'POST', body, admin: true }), () => Pages.rule(name));
  };
  const form = el('form', { class: 'admin', id: 'tripwire-form' }, adminToken(),
    el('div', { class: 'full' }, apply, ' ', el('label', { for: 'apply-suppressed' }, 'with a reset, apply the restrictions it withheld')),
    el('div', { class: 'full' }, el('button', { type: 'button', id: 'tripwire-reset', onclick: act('reset') }, 'Reset (re-arm)'), ' ',
      el('button', { type: 'button', class: 'danger', id: 'tripwire-trip', onclick: act('trip') }, 'Trip (switch off)'), ' ', out));
  return section('Tripwire', el('dl', {},
    el('dt', {}, 'state'), el('dd', {}, badge(t.state, t.state), t.forced ? ' (by an operator)' : ''),
    el('dt', {}, 'in the window'), el('dd', { id: 'tripwire-share' }, `${t.restricted_in_window.toLocaleString('en')} restricted in ${t.window_seconds} s; trips at ${bound.toLocaleString('en')} (${(t.threshold * 100).toFixed(2)} % of ${t.population.toLocaleString('en')} users, at least ${t.min_restricted})`),
    el('dt', {}, 'all time'), el('dd', {}, `${t.restricted_total.toLocaleString('en')} restricted, ${t.suppressed_total.toLocaleString('en')} withheld, ${t.trips} trips`),
  ), bar, el('h2', { class: 'spaced' }, 'Controls (admins)'), form);
}

function decisions(series, t) {
  const colour = { fired: '#b91c1c', would_restrict: '#3b6fd6', suppressed: '#a16207' };
  const label = { fired: 'restricted', would_restrict: 'shadow would restrict', suppressed: 'suppressed by the tripwire' };
  const bound = Math.max(t.min_restricted, Math.ceil(t.threshold * t.population));
  const perMinute = bound * Math.min(1, 60 / t.window_seconds);
  return lineChart({
    title: 'restrictions, shadow decisions and withheld ones per minute',
    from: series.from_ms, to: series.to_ms, step: series.step_ms,
    series: series.series.map((s) => ({ name: label[s.kind], points: s.points, colour: colour[s.kind] })),
    threshold: { value: perMinute, label: `trip bound (${bound} per ${t.window_seconds} s window, per minute)` },
  });
}

function restricted(name, first, t) {
  const wrap = el('section', { class: 'wide', id: 'rule-users' });
  const render = (page) => {
    const rows = page.users.map((u) => tr([userLink(u.user_id), el('span', { class: 'mono' }, u.event_id), when(u.at_ms)], { class: 'rule-user' }));
    const go = (offset) => api(`/v1/rules/${encodeURIComponent(name)}/users?limit=${USERS_PAGE}&offset=${offset}`).then(render, failed);
    const prev = el('button', { type: 'button', disabled: page.offset === 0, onclick: () => go(Math.max(0, page.offset - USERS_PAGE)) }, 'Newer');
    const next = el('button', { type: 'button', id: 'rule-users-next', disabled: page.next_offset === null, onclick: () => go(page.next_offset) }, 'Older');
    const shown = page.users.length ? `${page.offset + 1}–${page.offset + page.users.length} of ${page.total.toLocaleString('en')}` : `0 of ${page.total}`;
    wrap.replaceChildren(
      el('h2', {}, `Users restricted in the tripwire window (${t.window_seconds} s), newest first`),
      table('rule-users-table', ['user', 'event', 'at'], rows),
      el('div', { class: 'pager' }, prev, next, el('span', { id: 'rule-users-count', class: 'muted' }, shown)),
    );
  };
  render(first);
  return wrap;
}

/** A candidate definition of the rule against the users as they are. */
function simulation(name, version) {
  const text = el('textarea', { id: 'simulate-definition', rows: 8, cols: 60, spellcheck: 'false', class: 'mono' });
  const out = el('pre', { id: 'simulate-result', hidden: true });
  const form = el('form', { id: 'simulate-form' },
    el('label', { for: 'simulate-definition' }, 'The rule\'s definition (JSON), changed as you want to try it'), el('br'), text, el('br'),
    el('button', { type: 'submit' }, 'Simulate'));
  let content = null;
  api(`/v1/rules/versions/${version}`).then((v) => { content = v.content; text.value = JSON.stringify(content.rules[name], null, 2); }, () => {});
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    out.hidden = false;
    try {
      const candidate = structuredClone(content);
      candidate.rules[name] = JSON.parse(text.value);
      const result = await api('/v1/rules/simulate', { method: 'POST', body: candidate });
      const mine = result.rules.find((x) => x.rule === name) || {};
      out.textContent = `against version ${result.against_version}, ${result.population} users:\n` + JSON.stringify(mine, null, 2);
    } catch (err) {
      out.textContent = err.message;
    }
  });
  return el('section', { class: 'wide' }, el('h2', {}, 'Simulate a candidate definition'), form, out);
}
