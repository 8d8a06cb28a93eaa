'use strict';
// `/rules/versions/<n>`: one published version of the rule set: who, when,
// why, what it changed against the one before, and its content.

Pages.version = async function version(n) {
  document.title = `version ${n} · restrictd`;
  try {
    const [v, list] = await Promise.all([
      api(`/v1/rules/versions/${encodeURIComponent(n)}`).catch((e) => { if (e.status === 404 || e.status === 400) return null; throw e; }),
      api('/v1/rules/versions?limit=1'),
    ]);
    $('auth').hidden = true;
    const heading = el('h1', {}, `Rule-set version ${n}`);
    if (!v) {
      show(heading, el('p', { id: 'no-version' }, `No version ${n}. The current one is `, versionLink(list.current), '.'));
      return drawn();
    }
    const diff = Object.entries(v.diff || {}).filter(([, names]) => names.length).map(([k, names]) => tr([
      k.replace(/_/g, ' '), el('span', {}, names.flatMap((name, i) => [i ? ', ' : '', /^rules/.test(k) && !/removed/.test(k) ? ruleLink(name) : name])),
    ], { id: `diff-${k}` }));
    const nav = el('p', {}, v.version > 1 ? versionLink(v.version - 1) : null, v.version > 1 ? ' ← previous · ' : '',
      v.version < list.current ? ['next → ', versionLink(v.version + 1), ' · '] : '', 'current: ', versionLink(list.current));
    show(
      heading,
      nav,
      section('Published', el('dl', {},
        el('dt', {}, 'by'), el('dd', { id: 'version-by' }, v.by),
        el('dt', {}, 'at'), el('dd', {}, v.at),
        el('dt', {}, 'how'), el('dd', {}, v.source),
        el('dt', {}, 'message'), el('dd', {}, v.message || '—'),
      )),
      section('What it changed', diff.length ? table('diff', ['what', 'names'], diff) : el('p', { class: 'muted' }, 'Nothing against the version before.')),
      el('section', { class: 'wide' }, el('h2', {}, 'Content'), el('pre', { id: 'version-content' }, JSON.stringify(v.content, null, 2))),
    );
    status(`version ${n}`);
    drawn();
  } catch (e) {
    failed(e);
  }
};
