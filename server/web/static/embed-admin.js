// tally dashboard, embeds page: embed secrets, the embedded views'
// settings and a token to open one, through /api/analytics/embed/*.
// No inline script (CSP).
(function () {
  'use strict';

  document.documentElement.classList.add('js');
  const root = document.getElementById('embeds');
  if (!root) return;
  const $ = (sel) => root.querySelector(sel);
  const api = window.tallyAPI(root);
  const when = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

  function show(err) {
    const el = $('[data-error]');
    el.textContent = err ? err.message || String(err) : '';
    el.hidden = !err;
  }

  function cell(tr, text) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  async function loadSecrets() {
    const { secrets } = await api('/api/analytics/embed/secrets');
    const body = $('[data-secrets]');
    body.replaceChildren();
    if (!secrets.length) {
      const tr = document.createElement('tr');
      tr.className = 'empty';
      cell(tr, 'No secret yet: create one to sign embed tokens.').colSpan = 6;
      body.appendChild(tr);
      return;
    }
    for (const s of secrets) {
      const tr = document.createElement('tr');
      tr.dataset.secret = String(s.id);
      cell(tr, String(s.id));
      cell(tr, s.name);
      cell(tr, s.created_by);
      cell(tr, when.format(new Date(s.created_at)));
      cell(tr, s.revoked_at ? 'revoked ' + when.format(new Date(s.revoked_at)) : 'active');
      const td = cell(tr, '');
      if (!s.revoked_at) {
        const btn = document.createElement('button');
        btn.type = 'button';
        btn.className = 'btn btn-quiet';
        btn.textContent = 'Revoke';
        btn.dataset.revoke = String(s.id);
        btn.setAttribute('aria-label', 'Revoke secret ' + s.name);
        td.appendChild(btn);
      }
      body.appendChild(tr);
    }
  }

  async function loadSettings() {
    const s = await api('/api/analytics/embed/settings');
    const f = $('[data-settings-form]');
    f.origins.value = (s.allowed_origins || []).join('\n');
    f.primary.value = s.theme.primary || '';
    f.background.value = s.theme.background || '';
    f.text.value = s.theme.text || '';
    f.logo_url.value = s.theme.logo_url || '';
  }

  $('[data-secret-form]').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(null);
    try {
      const s = await api('/api/analytics/embed/secrets', { method: 'POST', body: { name: ev.target.name.value.trim() } });
      $('[data-secret-value]').textContent = s.secret;
      $('[data-new-secret]').hidden = false;
      ev.target.reset();
      await loadSecrets();
    } catch (err) { show(err); }
  });

  $('[data-secrets]').addEventListener('click', async (ev) => {
    const btn = ev.target.closest('[data-revoke]');
    if (!btn) return;
    if (!window.confirm('Revoke this secret? Every token it signed stops working at once.')) return;
    show(null);
    try {
      await api('/api/analytics/embed/secrets/' + encodeURIComponent(btn.dataset.revoke), { method: 'DELETE' });
      await loadSecrets();
    } catch (err) { show(err); }
  });

  $('[data-settings-form]').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(null);
    const f = ev.target;
    const body = {
      allowed_origins: f.origins.value.split('\n').map((o) => o.trim()).filter(Boolean),
      theme: { primary: f.primary.value.trim(), background: f.background.value.trim(), text: f.text.value.trim(), logo_url: f.logo_url.value.trim() },
    };
    try {
      await api('/api/analytics/embed/settings', { method: 'PUT', body });
      $('[data-settings-saved]').textContent = 'Saved.';
    } catch (err) { show(err); }
  });

  $('[data-token-form]').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(null);
    const f = ev.target;
    const body = {
      metrics: f.metrics.value.split(',').map((m) => m.trim()).filter(Boolean),
      ttl_seconds: Math.round(Number(f.ttl.value) * 60),
    };
    if (f.user_id.value.trim()) body.subject = { user_id: f.user_id.value.trim() };
    try {
      const t = await api('/api/analytics/embed/tokens', { method: 'POST', body });
      const a = $('[data-token-link]');
      a.href = t.url;
      $('[data-token-expiry]').textContent = when.format(new Date(t.expires_at));
      $('[data-token-result]').hidden = false;
    } catch (err) { show(err); }
  });

  Promise.all([loadSecrets(), loadSettings()]).catch(show);
})();
