// tally dashboard, Live panel: follows the tenant's events as they are
// committed (GET /api/analytics/events/stream, Server-Sent Events). The
// browser's EventSource reconnects on its own with Last-Event-ID; when the
// server ends the stream ("end" event: slow client, shutdown), the panel
// reconnects after the last event it showed.
(function () {
  'use strict';
  const root = document.getElementById('dashboard');
  const panel = root && root.querySelector('[data-live-panel]');
  if (!panel || typeof EventSource === 'undefined') return;
  const body = panel.querySelector('[data-live]');
  const status = panel.querySelector('[data-live-status]');
  const tz = root.dataset.tz || 'UTC';
  const max = 50;
  let last = 0;
  let source = null;
  const fmt = new Intl.DateTimeFormat('en-US', { timeZone: tz, hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function show(e) {
    const empty = body.querySelector('tr.empty');
    if (empty) empty.remove();
    const tr = document.createElement('tr');
    tr.dataset.eventId = e.event_id;
    tr.dataset.id = String(e.id);
    cell(tr, fmt.format(new Date(e.timestamp)));
    cell(tr, e.event);
    cell(tr, e.user_id || '—');
    cell(tr, e.source);
    cell(tr, String(e.value), 'num');
    body.insertBefore(tr, body.firstChild);
    while (body.children.length > max) body.lastChild.remove();
  }

  function connect() {
    const q = new URLSearchParams({ tenant: root.dataset.tenant });
    if (last > 0) q.set('last_event_id', String(last));
    source = new EventSource('/api/analytics/events/stream?' + q.toString());
    source.onopen = function () {
      status.textContent = 'Live';
      panel.dataset.state = 'open';
    };
    source.onmessage = function (m) {
      try {
        const e = JSON.parse(m.data);
        last = e.id;
        show(e);
      } catch (_) { /* not an event */ }
    };
    source.addEventListener('end', function (m) {
      let reason = 'ended';
      try { reason = JSON.parse(m.data).reason; } catch (_) { /* keep the default */ }
      source.close();
      panel.dataset.state = 'ended';
      status.textContent = 'Reconnecting (' + reason.replace(/_/g, ' ') + ')…';
      setTimeout(connect, 2000);
    });
    source.onerror = function () {
      panel.dataset.state = 'reconnecting';
      status.textContent = 'Reconnecting…';
    };
  }
  connect();
})();
