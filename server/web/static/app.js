// tally dashboard: fills the server-rendered analytics page from the JSON
// API (API.md). No framework, no inline script or style (the CSP forbids
// both): the page hands over what this needs in data-* attributes.
(function () {
  'use strict';

  document.documentElement.classList.add('js');

  const root = document.getElementById('dashboard');
  if (!root) return;

  const tenant = root.dataset.tenant;
  const tz = root.dataset.tz || 'UTC';
  const csrf = root.dataset.csrf;
  const pageSize = Number(root.dataset.pageSize) || 25;
  const $ = (sel, el) => (el || root).querySelector(sel);
  const $$ = (sel, el) => Array.from((el || root).querySelectorAll(sel));

  const state = {
    range: root.dataset.range || '7d',
    report: null,
    usage: [],
    kpi: 'events',
    usageMetric: '',
    filters: {},
    rangeFrom: '', // start of the selected range (the metrics report's from)
    cursor: '', // cursor of the page shown ('' = first page)
    stack: [], // cursors of the pages before it, for Previous
    next: null,
    seq: { range: 0, events: 0 },
  };
  const charts = { kpi: null, usage: null };

  // ---- API -------------------------------------------------------------

  class APIError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  // api calls the JSON API as the logged-in user in this page's tenant.
  async function api(path, opts) {
    opts = opts || {};
    const method = opts.method || 'GET';
    const headers = { 'X-Tenant-Slug': tenant, Accept: opts.accept || 'application/json' };
    if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrf;
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method, headers, credentials: 'same-origin', body: opts.body });
    if (res.status === 401) {
      window.location.assign('/ui/login');
      throw new APIError('Your session has ended. Please sign in again.', 401);
    }
    if (!res.ok) {
      let detail = res.statusText || 'Request failed';
      try {
        const p = await res.json();
        detail = p.detail || p.title || detail;
        if (p.errors && p.errors.length) detail += ': ' + p.errors.map((e) => e.field + ' ' + e.message).join(', ');
      } catch (_) { /* not a problem document */ }
      throw new APIError(detail, res.status);
    }
    return opts.raw ? res : res.json();
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== '' && v != null) q.set(k, v);
    return q.toString();
  }

  const errorBox = $('[data-error]');
  const errors = new Map();
  function setError(key, err) {
    if (err) errors.set(key, err.message || String(err));
    else errors.delete(key);
    errorBox.textContent = Array.from(errors.values()).join(' · ');
    errorBox.hidden = errors.size === 0;
  }

  // ---- Formatting --------------------------------------------------------

  const num = new Intl.NumberFormat();
  const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });
  const pct = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const dayFmt = new Intl.DateTimeFormat(undefined, { timeZone: tz, weekday: 'short', month: 'short', day: 'numeric' });
  const hourFmt = new Intl.DateTimeFormat(undefined, { timeZone: tz, month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  const dayOnlyFmt = new Intl.DateTimeFormat(undefined, { timeZone: 'UTC', month: 'short', day: 'numeric', year: 'numeric' });
  const clockFmt = new Intl.DateTimeFormat(undefined, { timeZone: tz, hour: 'numeric', minute: '2-digit' });
  const timeFmt = new Intl.DateTimeFormat(undefined, {
    timeZone: tz, month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  const yearTimeFmt = new Intl.DateTimeFormat(undefined, {
    timeZone: tz, year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  const thisYear = new Date().getFullYear();
  const partsFmt = new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
  });

  // zoneOffset is how far tz's wall clock is ahead of UTC at instant ms.
  function zoneOffset(ms) {
    const p = {};
    for (const part of partsFmt.formatToParts(new Date(ms))) p[part.type] = part.value;
    const wall = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute, +p.second);
    return wall - Math.floor(ms / 1000) * 1000;
  }

  // zonedMidnight is the instant (ms) of midnight starting day y-m-d in tz.
  function zonedMidnight(y, m, d) {
    const wall = Date.UTC(y, m - 1, d);
    let t = wall - zoneOffset(wall);
    t = wall - zoneOffset(t); // settle across a daylight-saving change
    return t;
  }

  // dayBound turns a date input (YYYY-MM-DD, a day in tz) into the RFC 3339
  // instant of its start, or of its end when end is set.
  function dayBound(value, end) {
    const [y, m, d] = value.split('-').map(Number);
    const t = end ? zonedMidnight(y, m, d + 1) - 1 : zonedMidnight(y, m, d);
    return new Date(t).toISOString();
  }

  // ---- KPI cards ---------------------------------------------------------

  const rangeWords = { today: 'yesterday', '7d': 'previous 7 days', '30d': 'previous 30 days', '90d': 'previous 90 days' };

  function renderKPIs(rep) {
    // Today is compared with yesterday up to the same time, and says so.
    let than = rangeWords[rep.range] || 'previous period';
    let prevLabel = 'prev.';
    if (rep.range === 'today' && rep.previous_to) {
      const until = clockFmt.format(new Date(rep.previous_to));
      than = 'yesterday until ' + until;
      prevLabel = 'yesterday to ' + until + ':';
    }
    for (const card of $$('[data-kpi]')) {
      const k = rep.kpis[card.dataset.kpi];
      if (!k) continue;
      const value = $('[data-value]', card);
      value.textContent = num.format(k.value);
      value.dataset.raw = String(k.value);
      $('[data-previous]', card).textContent = num.format(k.previous);
      $('[data-previous-label]', card).textContent = prevLabel;
      renderChange($('[data-change]', card), k, than);
    }
    $('[data-kpis]').setAttribute('aria-busy', 'false');
  }

  function renderChange(el, k, than) {
    let cls = 'flat';
    let arrow = '';
    let shown;
    let said;
    if (k.change_pct == null) {
      shown = k.value > 0 ? 'new' : '—';
      said = k.value > 0 ? 'New: nothing in the ' + than : 'No change: nothing in either period';
    } else if (k.change_pct > 0) {
      cls = 'up';
      arrow = '▲';
      shown = '+' + pct.format(k.change_pct) + '%';
      said = 'Up ' + pct.format(k.change_pct) + '% on the ' + than;
    } else if (k.change_pct < 0) {
      cls = 'down';
      arrow = '▼';
      shown = '−' + pct.format(-k.change_pct) + '%';
      said = 'Down ' + pct.format(-k.change_pct) + '% on the ' + than;
    } else {
      shown = '0%';
      said = 'Unchanged on the ' + than;
    }
    el.className = 'change ' + cls;
    el.title = said;
    el.replaceChildren();
    if (arrow) el.append(span(arrow, '', true));
    el.append(span(shown, '', true), span(said, 'visually-hidden'));
  }

  function span(text, cls, hidden) {
    const s = document.createElement('span');
    s.textContent = text;
    if (cls) s.className = cls;
    if (hidden) s.setAttribute('aria-hidden', 'true');
    return s;
  }

  // ---- Charts ------------------------------------------------------------

  const colors = { kpi: '#4338ca', usage: '#0e7490' };
  const chartHeight = () => (window.innerWidth < 640 ? 200 : 230);

  function drawChart(name, label, points, hourly) {
    const el = $('[data-chart="' + name + '"]');
    if (charts[name]) {
      charts[name].destroy();
      charts[name] = null;
    }
    el.replaceChildren();
    if (!points || points.length === 0) {
      const p = document.createElement('p');
      p.className = 'chart-empty';
      p.textContent = 'No data for this range.';
      el.append(p);
      return;
    }
    if (typeof uPlot === 'undefined') return;
    const xs = points.map((p) => Date.parse(p.start) / 1000);
    const ys = points.map((p) => p.value);
    const color = colors[name];
    const fmtX = hourly ? hourFmt : dayFmt;
    const opts = {
      width: Math.max(el.clientWidth, 200),
      height: chartHeight(),
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), tz),
      padding: [12, 20, 0, 0],
      cursor: { drag: { x: false, y: false }, points: { size: 8, fill: color } },
      legend: { live: true },
      scales: {
        x: { time: true },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      series: [
        { label: hourly ? 'Hour' : 'Day', value: (u, v) => (v == null ? '—' : fmtX.format(new Date(v * 1e3))) },
        {
          label,
          stroke: color,
          width: 2,
          fill: color + '22',
          points: { show: points.length <= 31, size: 5, fill: color },
          value: (u, v) => (v == null ? '—' : num.format(v)),
        },
      ],
      axes: [
        { stroke: '#4b5563', grid: { stroke: '#eceef2', width: 1 }, ticks: { stroke: '#e2e5eb', width: 1 } },
        {
          stroke: '#4b5563',
          size: 52,
          grid: { stroke: '#eceef2', width: 1 },
          ticks: { show: false },
          values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? compact.format(v) : '')),
        },
      ],
    };
    // Without the pointer on the chart, the read-out shows the latest bucket.
    const latest = (u) => {
      if (u.legend.idx == null) u.setLegend({ idx: xs.length - 1 });
    };
    opts.hooks = { ready: [latest], setLegend: [latest] };
    charts[name] = new uPlot(opts, [xs, ys], el);
  }

  function drawKPIChart() {
    const rep = state.report;
    if (!rep) return;
    const sel = $('[data-kpi-select]');
    const label = sel.options[sel.selectedIndex].text;
    drawChart('kpi', label, rep.timeseries[state.kpi], rep.range === 'today');
  }

  function drawUsageChart() {
    const s = state.usage.find((x) => x.metric === state.usageMetric);
    drawChart('usage', state.usageMetric, s ? s.points : [], state.range === 'today');
  }

  let resizeQueued = false;
  window.addEventListener('resize', () => {
    if (resizeQueued) return;
    resizeQueued = true;
    window.requestAnimationFrame(() => {
      resizeQueued = false;
      for (const [name, u] of Object.entries(charts)) {
        if (!u) continue;
        const el = $('[data-chart="' + name + '"]');
        u.setSize({ width: Math.max(el.clientWidth, 200), height: chartHeight() });
      }
    });
  });

  // ---- Range: KPIs, charts -----------------------------------------------

  async function loadRange() {
    const seq = ++state.seq.range;
    $('[data-kpis]').setAttribute('aria-busy', 'true');
    try {
      const rep = await api('/api/analytics/metrics?' + query({ range: state.range, tz }));
      if (seq !== state.seq.range) return;
      state.report = rep;
      state.rangeFrom = rep.from;
      if (!state.filters.from && !state.filters.to) reloadEvents();
      renderKPIs(rep);
      drawKPIChart();
      setError('metrics', null);
      const usage = await api('/api/analytics/usage?' + query({
        from: rep.from, to: rep.to, tz, granularity: rep.range === 'today' ? 'hour' : 'day',
      }));
      if (seq !== state.seq.range) return;
      state.usage = usage.series || [];
      fillUsageSelect();
      drawUsageChart();
    } catch (err) {
      if (seq === state.seq.range) {
        setError('metrics', err);
        if (!state.filters.from && !state.filters.to) reloadEvents();
      }
    }
  }

  function fillUsageSelect() {
    const sel = $('[data-usage-select]');
    const names = state.usage.map((s) => s.metric);
    if (!names.includes(state.usageMetric)) {
      state.usageMetric = names.includes('api_requests_daily') ? 'api_requests_daily' : names[0] || '';
    }
    sel.replaceChildren(...names.map((n) => new Option(n, n, false, n === state.usageMetric)));
    if (names.length === 0) sel.append(new Option('No usage metrics', ''));
    sel.disabled = names.length === 0;
  }

  function setRange(r) {
    state.range = r;
    for (const b of $$('[data-range]', $('.range-picker'))) b.setAttribute('aria-pressed', String(b.dataset.range === r));
    const url = new URL(window.location.href);
    url.searchParams.set('tenant', tenant);
    url.searchParams.set('range', r);
    window.history.replaceState(null, '', url);
    const hidden = document.querySelector('.tenant-switch input[name="range"]');
    if (hidden) hidden.value = r;
    loadRange();
  }

  // ---- Quotas --------------------------------------------------------------

  async function loadQuotas() {
    const list = $('[data-quotas]');
    try {
      const res = await api('/api/analytics/quotas');
      const quotas = res.quotas || [];
      list.replaceChildren(...quotas.map(quotaItem));
      if (quotas.length === 0) {
        const li = document.createElement('li');
        li.className = 'muted';
        li.textContent = 'No quotas are set for this tenant.';
        list.append(li);
      }
      setError('quotas', null);
    } catch (err) {
      list.replaceChildren();
      setError('quotas', err);
    }
  }

  function quotaItem(q) {
    const allowance = q.limit + (q.granted || 0); // grants top up the period
    const share = allowance > 0 ? (q.current / allowance) * 100 : q.current > 0 ? 100 : 0;
    const level = share >= 100 ? 'over' : share >= 80 ? 'warn' : 'ok';
    const li = document.createElement('li');
    li.className = 'quota ' + level;
    li.dataset.metric = q.metric;

    const row = document.createElement('div');
    row.className = 'quota-row';
    const name = span(q.metric, 'quota-name');
    const nums = span(num.format(q.current) + ' / ' + num.format(allowance), 'quota-nums');
    row.append(name, nums);

    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.setAttribute('role', 'progressbar');
    bar.setAttribute('aria-label', q.metric + ' quota used');
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', String(allowance));
    bar.setAttribute('aria-valuenow', String(Math.min(q.current, allowance)));
    bar.setAttribute('aria-valuetext', Math.round(share) + '% used');
    const fill = document.createElement('div');
    fill.className = 'bar-fill';
    fill.style.width = Math.min(share, 100).toFixed(1) + '%'; // CSSOM, allowed by the CSP
    bar.append(fill);

    const note = document.createElement('p');
    note.className = 'quota-note';
    const words = { ok: 'OK', warn: 'Near limit', over: 'Over limit' };
    note.append(span(Math.round(share) + '% · ' + words[level], 'tag tag-level'), ' ');
    note.append(span(q.enforced ? 'enforced' : 'soft', 'tag'), ' ');
    note.append(span(q.period === 'billing' ? 'billing from day ' + q.anchor_day : 'per ' + (q.period || 'day'), 'tag'), ' ');
    if (q.granted > 0) note.append(span('+' + num.format(q.granted) + ' granted', 'tag'), ' ');
    note.append('resets ' + clockFmt.format(new Date(q.resets_at)));
    li.append(row, bar, note);
    return li;
  }

  // ---- Webhook deliveries ---------------------------------------------------

  const deliveries = { next: null };

  // loadDeliveries shows the first page of the delivery log, or appends
  // the next one (more).
  async function loadDeliveries(more) {
    const body = $('[data-deliveries]');
    const btn = $('[data-deliveries-more]');
    try {
      const res = await api('/api/analytics/webhooks/deliveries?' + query({ limit: 20, cursor: more ? deliveries.next : '' }));
      const rows = (res.deliveries || []).map(deliveryRow);
      deliveries.next = res.next_cursor;
      if (more) body.append(...rows);
      else if (rows.length) body.replaceChildren(...rows);
      else body.replaceChildren(emptyRow(6, 'No webhook deliveries yet. Set a webhook URL on the tenant to receive quota alerts.'));
      setError('deliveries', null);
    } catch (err) {
      deliveries.next = null;
      if (!more) body.replaceChildren(emptyRow(6, 'Webhook deliveries could not be loaded.'));
      setError('deliveries', err);
    }
    btn.hidden = !deliveries.next;
  }

  function emptyRow(cols, text) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    const td = document.createElement('td');
    td.colSpan = cols;
    td.textContent = text;
    tr.append(td);
    return tr;
  }

  function timeCell(iso) {
    if (!iso) return span('—', 'muted');
    const t = document.createElement('time');
    t.dateTime = iso;
    const at = new Date(iso);
    t.textContent = (at.getFullYear() === thisYear ? timeFmt : yearTimeFmt).format(at);
    t.title = at.toISOString();
    return t;
  }

  function deliveryRow(d) {
    const tr = document.createElement('tr');
    tr.dataset.delivery = d.id;
    tr.dataset.status = d.status;
    const cell = (child, cls) => {
      const td = document.createElement('td');
      if (cls) td.className = cls;
      td.append(child);
      tr.append(td);
    };
    cell(timeCell(d.created_at));
    const c = document.createElement('code');
    c.textContent = d.metric + ' ≥ ' + d.threshold + ' %';
    c.title = d.event_type + ' · ' + d.id;
    cell(c);
    cell(span(d.status, 'delivery-status status-' + d.status));
    cell(num.format(d.attempts), 'num');
    let last = d.last_status_code ? 'HTTP ' + d.last_status_code : '';
    if (d.last_error) last += (last ? ' · ' : '') + d.last_error;
    cell(last ? span(last) : span('—', 'muted'));
    cell(timeCell(d.next_attempt_at));
    return tr;
  }

  // ---- Events --------------------------------------------------------------

  const form = $('[data-filters]');

  function readFilters() {
    const f = Object.fromEntries(new FormData(form).entries());
    const name = f.event.trim();
    if (name && !/^[A-Za-z0-9_.-]{1,128}\*?$/.test(name)) {
      throw new APIError('Event: give a name such as files.uploaded, or a prefix ending in * such as auth.*', 400);
    }
    const out = { event: name, user_id: f.user_id.trim(), source: f.source.trim(), from: '', to: '' };
    if (f.from) out.from = dayBound(f.from, false);
    if (f.to) out.to = dayBound(f.to, true);
    if (f.from && f.to && f.from > f.to) throw new APIError('“From” must not be after “To”.', 400);
    return out;
  }

  // eventsFilters are the filters of the table and the export: the form's,
  // and without dates the selected range (from its start, open-ended).
  function eventsFilters() {
    const f = Object.assign({}, state.filters);
    if (!f.from && !f.to && state.rangeFrom) f.from = state.rangeFrom;
    return f;
  }

  // reloadEvents shows the first page of the table again.
  function reloadEvents() {
    state.cursor = '';
    state.stack = [];
    describeScope();
    updateExport();
    loadEvents();
  }

  async function loadEvents() {
    const seq = ++state.seq.events;
    const body = $('[data-events]');
    body.setAttribute('aria-busy', 'true');
    try {
      const res = await api('/api/analytics/events?' + query(Object.assign(eventsFilters(), { limit: pageSize, cursor: state.cursor })));
      if (seq !== state.seq.events) return;
      state.next = res.next_cursor;
      renderEvents(res.events || []);
      setError('events', null);
    } catch (err) {
      if (seq !== state.seq.events) return;
      state.next = null;
      renderEvents([], err.message);
      setError('events', err);
    } finally {
      if (seq === state.seq.events) {
        body.setAttribute('aria-busy', 'false');
        $('[data-prev]').disabled = state.stack.length === 0;
        $('[data-next]').disabled = !state.next;
        $('[data-page]').textContent = 'Page ' + (state.stack.length + 1);
      }
    }
  }

  function renderEvents(events, failed) {
    const body = $('[data-events]');
    if (events.length === 0) {
      const filtered = Object.values(state.filters).some((v) => v);
      body.replaceChildren(emptyRow(6, failed
        ? 'Events could not be loaded.'
        : filtered
          ? 'No events match these filters.'
          : 'No events in this range. Send one with POST /api/analytics/events.'));
      return;
    }
    body.replaceChildren(...events.map(eventRow));
  }

  function eventRow(e) {
    const tr = document.createElement('tr');
    tr.dataset.id = String(e.id);
    const labels = ['Time', 'Event', 'User', 'Source', 'Value', 'Props'];
    const cell = (child, cls) => {
      const td = document.createElement('td');
      td.dataset.label = labels[tr.children.length]; // the stacked (phone) layout's label
      if (cls) td.className = cls;
      td.append(child);
      tr.append(td);
    };
    cell(timeCell(e.timestamp));
    const c = document.createElement('code');
    c.textContent = e.event;
    cell(c);
    cell(e.user_id || '—');
    cell(e.source);
    cell(num.format(e.value), 'num');
    cell(propsView(e.props));
    return tr;
  }

  function propsView(props) {
    const keys = props && typeof props === 'object' ? Object.keys(props) : [];
    if (keys.length === 0) return span('—', 'muted');
    const d = document.createElement('details');
    d.className = 'props';
    const s = document.createElement('summary');
    s.textContent = keys.map((k) => k + '=' + short(props[k])).join(' ');
    const pre = document.createElement('pre');
    pre.textContent = JSON.stringify(props, null, 2);
    d.append(s, pre);
    return d;
  }

  function short(v) {
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    return s.length > 24 ? s.slice(0, 23) + '…' : s;
  }

  // describeScope says which days the table covers.
  function describeScope() {
    const from = form.elements.from.value;
    const to = form.elements.to.value;
    const day = (v) => dayOnlyFmt.format(new Date(v + 'T12:00:00Z'));
    const picked = $('.range-picker [aria-pressed="true"]');
    let text = 'Without dates: the selected range, ' + (picked ? picked.textContent : state.range) + ' (' + tz + ').';
    if (from && to) text = 'From ' + day(from) + ' to ' + day(to) + ' (' + tz + ').';
    else if (from) text = 'From ' + day(from) + ' until now (' + tz + ').';
    else if (to) text = 'The 7 days up to the end of ' + day(to) + ' (' + tz + ').';
    $('[data-events-scope]').textContent = text;
  }

  function applyFilters() {
    const box = $('[data-filter-error]');
    try {
      state.filters = readFilters();
    } catch (err) {
      box.textContent = err.message;
      box.hidden = false;
      return;
    }
    box.hidden = true;
    reloadEvents();
  }

  // ---- Export --------------------------------------------------------------

  const exportBtn = $('[data-export]');

  function exportURL() {
    return '/api/analytics/export.csv?' + query(eventsFilters());
  }

  function updateExport() {
    exportBtn.dataset.href = exportURL();
  }

  // The export needs the X-Tenant-Slug header, which a plain link cannot
  // send: fetch it and hand the browser the file.
  async function download() {
    exportBtn.disabled = true;
    const label = exportBtn.textContent;
    exportBtn.textContent = 'Exporting…';
    try {
      const res = await api(exportURL(), { raw: true, accept: 'text/csv' });
      const blob = await res.blob();
      const m = /filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') || '');
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = m ? m[1] : 'events-' + tenant + '.csv';
      a.hidden = true;
      document.body.append(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      setError('export', res.headers.get('X-Export-Truncated') === 'true'
        ? new Error('The export stopped at ' + res.headers.get('X-Export-Row-Limit') + ' rows; narrow the filters for the rest.')
        : null);
    } catch (err) {
      setError('export', err);
    } finally {
      exportBtn.disabled = false;
      exportBtn.textContent = label;
    }
  }

  // ---- Wiring ----------------------------------------------------------------

  const switcher = document.querySelector('[data-switch-tenant]');
  if (switcher) {
    switcher.addEventListener('change', () => {
      window.location.assign('/ui/analytics?' + query({ tenant: switcher.value, range: state.range }));
    });
  }
  for (const b of $$('button[data-range]')) b.addEventListener('click', () => setRange(b.dataset.range));
  $('[data-kpi-select]').addEventListener('change', (e) => {
    state.kpi = e.target.value;
    drawKPIChart();
  });
  $('[data-usage-select]').addEventListener('change', (e) => {
    state.usageMetric = e.target.value;
    drawUsageChart();
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    applyFilters();
  });
  form.addEventListener('reset', () => window.setTimeout(applyFilters, 0));
  $('[data-next]').addEventListener('click', () => {
    if (!state.next) return;
    state.stack.push(state.cursor);
    state.cursor = state.next;
    loadEvents();
  });
  $('[data-prev]').addEventListener('click', () => {
    if (state.stack.length === 0) return;
    state.cursor = state.stack.pop();
    loadEvents();
  });
  exportBtn.addEventListener('click', download);
  $('[data-deliveries-more]').addEventListener('click', () => loadDeliveries(true));

  // The time-zone picker: every IANA zone the browser knows, the page's
  // first; picking one reloads the page in that zone.
  const tzSelect = $('[data-tz-select]');
  if (tzSelect) {
    const have = new Set(Array.from(tzSelect.options, (o) => o.value));
    const local = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const zones = (Intl.supportedValuesOf ? Intl.supportedValuesOf('timeZone') : []).filter((z) => !have.has(z));
    if (local && !have.has(local)) tzSelect.append(new Option(local + ' (this device)', local));
    for (const z of zones) if (z !== local) tzSelect.append(new Option(z, z));
    tzSelect.addEventListener('change', () => {
      window.location.assign('/ui/analytics?' + query({ tenant, range: state.range, tz: tzSelect.value }));
    });
  }

  state.kpi = $('[data-kpi-select]').value;
  describeScope();
  updateExport();
  loadRange(); // then the events of its range
  loadQuotas();
  loadDeliveries(false);
})();
