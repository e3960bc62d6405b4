// tally dashboard: the members page (invite, revoke) and the invitation
// page (accept). No inline script (the CSP forbids it): the pages hand
// over what this needs in data-* attributes.
(function () {
  'use strict';

  document.documentElement.classList.add('js');

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
    const api = window.tallyAPI(members);
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
        const res = await api(base, { method: 'POST', body });
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
        await api(base + '/' + encodeURIComponent(btn.dataset.revoke), { method: 'DELETE' });
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
    const api = window.tallyAPI(invitation);
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
        const res = await api('/api/invitations/' + encodeURIComponent(token) + '/accept', { method: 'POST' });
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
