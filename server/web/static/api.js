// tally dashboard: the JSON API as the dashboard pages call it. Loaded
// before a page's own script; tallyAPI(root) reads the tenant and the
// CSRF token from root's data-tenant and data-csrf.
(function () {
  'use strict';

  // root without data-tenant (the invitation page) sends no tenant.
  // tallyAPI returns api(path, {method, body}): the parsed answer (null
  // for 204), an Error whose message is the problem's detail and field
  // errors otherwise; a 401 goes back to the sign-in page.
  window.tallyAPI = function (root) {
    const tenant = root.dataset.tenant;
    const csrf = root.dataset.csrf;
    return async function api(path, opts) {
      opts = opts || {};
      const method = opts.method || 'GET';
      const headers = { Accept: 'application/json' };
      if (tenant) headers['X-Tenant-Slug'] = tenant;
      if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
      let body = opts.body;
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        if (typeof body !== 'string') body = JSON.stringify(body);
      }
      const res = await fetch(path, { method, headers, credentials: 'same-origin', body });
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
    };
  };
})();
