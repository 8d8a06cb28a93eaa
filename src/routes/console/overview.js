'use strict';
// The overview at `/`: events, restricted users, rules and tripwires,
// versions, charts of the last 24 hours and the live feed.

const fillBody = (id, rows) => $(id).tBodies[0].replaceChildren(...rows);

Pages.overview = function overview() {
  document.title = 'restrictd';
  show(
    el('h1', {}, 'Overview'),
    section(['Events since ', el('span', { id: 'since' }, 'start')], el('div', { class: 'big', id: 'events-total' }, '0'),
      table('events', ['event', 'count#', 'amount#'], [])),
    section('Restricted users by feature', table('restricted', ['feature', 'users#'], []),
      el('h2', { class: 'spaced' }, 'Rejected at the edge'), table('rejects', ['reason', 'count#'], [])),
    el('section', { class: 'wide', id: 'charts' }, el('h2', {}, 'The last 24 hours, per minute'), el('div', { id: 'chart-events' }), el('div', { id: 'chart-rules' })),
    el('section', { class: 'wide' }, el('h2', {}, 'Rules and tripwires · version ', el('span', { id: 'version' }, '?'), ' ', el('small', { id: 'version-by' })),
      table('rules', ['rule', 'mode', 'condition', 'restricts', 'tripwire', 'in window#', 'all time#', 'overlap#', 'population#'], [])),
    el('section', { class: 'wide' }, el('h2', {}, 'Rule-set versions'), table('versions', ['version', 'published by', 'when', 'what', 'changes'], [])),
    el('section', { class: 'wide' }, el('h2', {}, 'Live feed ', el('span', { id: 'feed-state' })), el('ul', { id: 'feed' })),
  );
  let shownVersion = null;
  async function versions(current) {
    if (current === shownVersion) return;
    const list = await api('/v1/rules/versions?limit=10');
    const details = await Promise.all(list.versions.map((v) => api(`/v1/rules/versions/${v.version}`)));
    fillBody('versions', details.map((v) => tr([versionLink(v.version), v.by, v.at, v.message || v.source, diffText(v.diff)], { id: `version-${v.version}` })));
    const top = details[0];
    $('version-by').textContent = top ? `published by ${top.by} at ${top.at}` : '';
    shownVersion = current;
  }
  async function refresh() {
    const [stats, rules] = await Promise.all([api('/v1/stats'), api('/v1/rules')]);
    $('auth').hidden = true;
    const events = Object.entries(stats.events);
    $('events-total').textContent = events.reduce((n, [, e]) => n + e.count, 0).toLocaleString('en');
    $('since').textContent = stats.since || 'first start';
    fillBody('events', events.map(([name, e]) => tr([name, e.count, e.amount], { id: `event-${name}` })));
    fillBody('restricted', Object.entries(stats.restricted_users).map(([f, n]) => tr([f, n], { id: `restricted-${f}` })));
    fillBody('rejects', Object.entries(stats.rejects).map(([k, n]) => tr([k, n])));
    fillBody('rules', rules.rules.map((r) => {
      const t = r.tripwire;
      const state = badge(t.mode === 'shadow' ? 'shadow' : t.state, t.mode === 'shadow' ? 'shadow' : t.state);
      return tr([ruleLink(r.name), t.mode, el('code', {}, r.when), r.restrict.join(', '), state, t.restricted_in_window, t.restricted_total, t.overlap_total, t.population], { id: `rule-${r.name}` });
    }));
    $('version').textContent = rules.version;
    await versions(rules.version);
    status('live · updated ' + new Date().toLocaleTimeString('en'));
  }
  async function charts() {
    const data = await api('/v1/timeseries?hours=24');
    const of = (kind) => data.series.filter((s) => s.kind === kind);
    const frame = { from: data.from_ms, to: data.to_ms, step: data.step_ms };
    $('chart-events').replaceChildren(lineChart({ ...frame, title: 'Events per minute, by name', series: of('event') }));
    $('chart-rules').replaceChildren(lineChart({ ...frame, title: 'Restrictions per minute, by rule', series: of('fired') }));
  }
  const tick = () => refresh().catch(failed);
  Promise.all([refresh(), charts()]).then(drawn, failed);
  setInterval(tick, 2000);
  setInterval(() => charts().catch(failed), 30000);
  startFeed();
};

/** What a version changed, in a line. */
function diffText(diff) {
  return Object.entries(diff || {})
    .filter(([k, names]) => names.length && k !== 'aggregates_carried_over')
    .map(([k, names]) => `${k.replace(/_/g, ' ')}: ${names.join(', ')}`)
    .join('; ');
}

// The live feed, read with fetch so that it carries the token (an
// EventSource cannot send a header). ?nofeed: none (a headless browser
// waiting for the page to go idle needs that).
function startFeed() {
  if (new URLSearchParams(location.search).has('nofeed')) return;
  const line = (d, kind) => {
    const at = new Date(d.at_ms).toLocaleTimeString('en');
    if (kind === 'tripwire') return el('li', {}, `${at}  tripwire `, ruleLink(d.rule), ` ${d.change} (${d.who})`);
    return el('li', {}, `${at}  `, userLink(d.user_id), `  ${d.change}  ${d.features.join(', ')}  by ${d.who}: ${d.why}`);
  };
  const handlers = {
    subscribed: () => { $('feed-state').textContent = '(connected)'; },
    change: (d) => add(line(d, 'change')),
    tripwire: (d) => add(line(d, 'tripwire')),
    disconnect: () => { $('feed-state').textContent = '(disconnected: too slow)'; },
  };
  const add = (li) => {
    $('feed').prepend(li);
    while ($('feed').children.length > 50) $('feed').lastChild.remove();
  };
  const dispatch = (block) => {
    let event = 'message';
    const data = [];
    for (const l of block.split('\n')) {
      if (l.startsWith('event:')) event = l.slice(6).trim();
      else if (l.startsWith('data:')) data.push(l.slice(5).replace(/^ /, ''));
    }
    if (handlers[event] && data.length) handlers[event](JSON.parse(data.join('\n')));
  };
  (async () => {
    try {
      const token = sessionStorage.getItem(READ);
      const r = await fetch('/v1/feed', { headers: token ? { Authorization: `Bearer ${token}` } : {} });
      if (!r.ok) { $('feed-state').textContent = `(refused: ${r.status})`; return; }
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) { dispatch(buffer.slice(0, end)); buffer = buffer.slice(end + 2); }
      }
      $('feed-state').textContent = '(disconnected)';
    } catch (e) {
      $('feed-state').textContent = `(disconnected: ${e.message})`;
    }
  })();
}
