// tally dashboard, funnels and retention: asks POST
// /api/analytics/funnels/query and /retention/query and shows the answers
// as tables (with data-* attributes holding the exact numbers) and uPlot
// charts.
(function () {
  'use strict';
  document.documentElement.classList.add('js');
  const root = document.getElementById('insights');
  if (!root) return;
  const $ = (sel) => root.querySelector(sel);
  const pct = new Intl.NumberFormat('en-US', { style: 'percent', maximumFractionDigits: 1 });
  const charts = {};

  const api = window.tallyAPI(root);
  const post = (path, body) => api(path, { method: 'POST', body });

  function range(days) {
    const to = new Date();
    const from = new Date(to.getTime() - Number(days) * 86400e3);
    return { from: from.toISOString(), to: to.toISOString() };
  }

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function duration(s) {
    if (s == null) return '—';
    if (s < 120) return Math.round(s) + ' s';
    if (s < 7200) return Math.round(s / 60) + ' min';
    if (s < 172800) return (s / 3600).toFixed(1) + ' h';
    return (s / 86400).toFixed(1) + ' d';
  }

  function chart(key, el, labels, series) {
    if (charts[key]) { charts[key].destroy(); charts[key] = null; }
    el.replaceChildren();
    if (typeof uPlot === 'undefined' || labels.length === 0) return;
    const colors = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2'];
    charts[key] = new uPlot({
      width: Math.max(el.clientWidth, 240), height: 220, padding: [12, 20, 0, 0],
      cursor: { drag: { x: false, y: false } }, legend: { live: true },
      scales: { x: { time: false }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [{ stroke: '#4b5563', values: (u, vals) => vals.map((v) => labels[v] || '') }, { stroke: '#4b5563', size: 52 }],
      series: [{ label: 'Step', value: (u, v) => labels[v] || '—' }].concat(series.map((s, i) => ({
        label: s.label, stroke: colors[i % colors.length], width: 2, points: { show: true, size: 6 },
      }))),
    }, [labels.map((_, i) => i)].concat(series.map((s) => s.values)), el);
  }

  $('[data-funnel-form]').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const err = $('[data-funnel-error]');
    err.hidden = true;
    const steps = f.steps.value.split(',').map((s) => s.trim()).filter(Boolean).map((event) => ({ event }));
    try {
      const r = await post('/api/analytics/funnels/query', Object.assign({ steps, window_seconds: Math.round(Number(f.window.value) * 3600) }, range(f.days.value)));
      const body = $('[data-funnel-table]');
      body.replaceChildren();
      for (const s of r.steps) {
        const tr = document.createElement('tr');
        tr.dataset.entered = String(s.entered);
        tr.dataset.converted = String(s.converted);
        tr.dataset.rate = String(s.conversion_rate);
        tr.dataset.median = s.median_seconds_to_convert == null ? '' : String(s.median_seconds_to_convert);
        cell(tr, s.event);
        cell(tr, String(s.entered), 'num');
        cell(tr, String(s.converted), 'num');
        cell(tr, pct.format(s.conversion_rate), 'num');
        cell(tr, duration(s.median_seconds_to_convert), 'num');
        body.appendChild(tr);
      }
      root.dataset.funnelDone = String(Number(root.dataset.funnelDone || 0) + 1);
      chart('funnel', $('[data-funnel-chart]'), r.steps.map((s) => s.event), [{ label: 'Users', values: r.steps.map((s) => s.entered) }]);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    }
  });

  $('[data-retention-form]').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const err = $('[data-retention-error]');
    err.hidden = true;
    try {
      const r = await post('/api/analytics/retention/query', Object.assign({ start_event: f.start.value.trim(), return_event: f.return.value.trim(), period: f.period.value }, range(f.days.value)));
      const n = r.cohorts.length;
      const head = document.createElement('tr');
      cell(head, 'Cohort');
      cell(head, 'Users', 'num');
      for (let k = 0; k < n; k++) cell(head, r.period + ' ' + k, 'num');
      $('[data-retention-head]').replaceChildren(head);
      const body = $('[data-retention-table]');
      body.replaceChildren();
      for (const c of r.cohorts) {
        const tr = document.createElement('tr');
        tr.dataset.start = c.start;
        tr.dataset.size = String(c.size);
        tr.dataset.counts = c.counts.join(',');
        cell(tr, c.start.slice(0, 10));
        cell(tr, String(c.size), 'num');
        c.counts.forEach((v, k) => { cell(tr, v + ' (' + pct.format(c.rates[k]) + ')', 'num'); });
        body.appendChild(tr);
      }
      root.dataset.retentionDone = String(Number(root.dataset.retentionDone || 0) + 1);
      // The chart: each period's return rate over every cohort that reached it.
      const labels = [];
      const values = [];
      for (let k = 0; k < n; k++) {
        let size = 0;
        let back = 0;
        for (const c of r.cohorts) if (c.counts.length > k) { size += c.size; back += c.counts[k]; }
        labels.push(r.period + ' ' + k);
        values.push(size > 0 ? back / size : 0);
      }
      chart('retention', $('[data-retention-chart]'), labels, [{ label: 'Returning', values }]);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    }
  });
})();
