// tally dashboard: the members page (invite, revoke) and the invitation
// page (accept). No inline script (the CSP forbids it): the pages hand
// over what this needs in data-* attributes.
(function () {
  'use strict';

  document.documentElement.classList.add('js');

  // api calls the JSON API with the session cookie and the CSRF token; it
  // resolves to the decoded answer (null for 204) or rejects with the
  // problem's detail.
  async function api(method, path, csrf, opts) {
    opts = opts || {};
    const headers = { Accept: 'application/json', 'X-CSRF-Token': csrf };
    if (opts.tenant) headers['X-Tenant-Slug'] = opts.tenant;
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method, headers, credentials: 'same-origin',
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    if (res.status === 401) {
      window.location.assign('/ui/login');
      throw new Error('Your session has ended. Please sign in again.');
    }
    if (!res.ok) {
      let detail = res.statusText || 'Request failed';
      try {
        const p = await res.json();
        detail = p.detail || p.title || detail;
        if (p.errors && p.errors.length) detail += ': ' + p.errors.map((e) => e.field + ' ' + e.message).join(', ');
      } catch (_) { /* not a problem document */ }
      throw new Error(detail);
    }
    return res.status === 204 ? null : res.json();
  }

  function showError(box, err) {
    box.textContent = err ? err.message || String(err) : '';
    box.hidden = !err;
  }

  function cell(text) {
    const td = document.createElement('td');
    td.textContent = text;
    return td;
  }

  // ---- members page ------------------------------------------------------

  const members = document.getElementById('members');
  if (members) {
    const tenant = members.dataset.tenant;
    const csrf = members.dataset.csrf;
    const errorBox = members.querySelector('[data-error]');
    const form = members.querySelector('[data-invite-form]');
    const result = members.querySelector('[data-invite-result]');
    const pending = members.querySelector('[data-invitations]');
    const base = '/api/tenants/' + encodeURIComponent(tenant) + '/invitations';

    function pendingRow(inv) {
      const tr = document.createElement('tr');
      tr.dataset.invitation = inv.id;
      const expires = new Date(inv.expires_at).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
      [inv.email, inv.role, inv.invited_by, expires].forEach((t) => tr.appendChild(cell(t)));
      const td = document.createElement('td');
      const btn = document.createElement('button');
      btn.className = 'btn btn-quiet';
      btn.type = 'button';
      btn.dataset.revoke = inv.id;
      btn.textContent = 'Revoke';
      td.appendChild(btn);
      tr.appendChild(td);
      return tr;
    }

    function emptyRow() {
      const tr = document.createElement('tr');
      tr.className = 'empty';
      const td = cell('No pending invitations.');
      td.colSpan = 5;
      tr.appendChild(td);
      return tr;
    }

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      try {
        const body = { email: form.elements.email.value.trim(), role: form.elements.role.value };
        const res = await api('POST', base, csrf, { body });
        showError(errorBox, null);
        result.querySelector('[data-invite-email]').textContent = res.invitation.email;
        result.querySelector('[data-invite-link]').value =
          window.location.origin + '/ui/invitation#' + encodeURIComponent(res.token);
        result.hidden = false;
        const empty = pending.querySelector('tr.empty');
        if (empty) empty.remove();
        pending.prepend(pendingRow(res.invitation));
        form.reset();
      } catch (err) {
        showError(errorBox, err);
      } finally {
        button.disabled = false;
      }
    });

    pending.addEventListener('click', async (ev) => {
      const btn = ev.target.closest('[data-revoke]');
      if (!btn) return;
      btn.disabled = true;
      try {
        await api('DELETE', base + '/' + encodeURIComponent(btn.dataset.revoke), csrf);
        showError(errorBox, null);
        btn.closest('tr').remove();
        if (!pending.querySelector('tr')) pending.appendChild(emptyRow());
      } catch (err) {
        btn.disabled = false;
        showError(errorBox, err);
      }
    });
  }

  // ---- invitation page ---------------------------------------------------

  const invitation = document.getElementById('invitation');
  const accept = invitation && invitation.querySelector('[data-accept]');
  if (accept) {
    const csrf = invitation.dataset.csrf;
    const errorBox = invitation.querySelector('[data-error]');
    const joined = invitation.querySelector('[data-joined]');
    const token = decodeURIComponent(window.location.hash.slice(1));
    if (!token) {
      invitation.querySelector('[data-no-token]').hidden = false;
      accept.disabled = true;
    }
    accept.addEventListener('click', async () => {
      accept.disabled = true;
      try {
        const res = await api('POST', '/api/invitations/' + encodeURIComponent(token) + '/accept', csrf);
        showError(errorBox, null);
        joined.textContent = 'You joined ' + res.tenant.name + ' as ' + res.tenant.role + '.';
        if (res.tenant.role !== 'member') {
          const a = document.createElement('a');
          a.href = '/ui/analytics?tenant=' + encodeURIComponent(res.tenant.slug);
          a.textContent = 'Open its dashboard';
          joined.append(' ', a);
        }
        joined.hidden = false;
        accept.hidden = true;
        history.replaceState(null, '', window.location.pathname); // the token is spent: drop it from the address bar
      } catch (err) {
        accept.disabled = false;
        showError(errorBox, err);
      }
    });
  }
})();
