// tally dashboard, meters page: lists, defines, edits and charts the
// tenant's meters through /api/analytics/meters. No inline script (CSP).
(function () {
  'use strict';

  document.documentElement.classList.add('js');
  const root = document.getElementById('meters');
  if (!root) return;

  const $ = (sel) => root.querySelector(sel);
  const num = new Intl.NumberFormat();
  const palette = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c', '#0891b2', '#4b5563'];
  let meters = [];
  let chart = null;

  const api = window.tallyAPI(root);

  function show(sel, err) {
    const el = $(sel);
    el.textContent = err ? err.message || String(err) : '';
    el.hidden = !err;
  }

  function cell(text) {
    const td = document.createElement('td');
    td.textContent = text;
    return td;
  }

  function renderList() {
    const body = $('[data-meters]');
    body.replaceChildren();
    for (const m of meters) {
      const tr = document.createElement('tr');
      tr.dataset.meter = m.slug;
      tr.append(cell(m.slug), cell(m.event), cell(m.aggregation), cell(m.value_property || '—'),
        cell((m.group_by || []).join(', ') || '—'), cell(m.description || ''));
      const actions = document.createElement('td');
      if (m.built_in) {
        actions.textContent = 'built in';
        actions.className = 'muted small';
      } else {
        const edit = document.createElement('button');
        edit.type = 'button';
        edit.className = 'btn btn-quiet';
        edit.textContent = 'Edit';
        edit.dataset.edit = m.slug;
        edit.addEventListener('click', () => startEdit(m));
        const del = document.createElement('button');
        del.type = 'button';
        del.className = 'btn btn-quiet';
        del.textContent = 'Delete';
        del.dataset.delete = m.slug;
        del.addEventListener('click', () => remove(m.slug));
        actions.append(edit, del);
      }
      tr.append(actions);
      body.append(tr);
    }
    const sel = $('[data-meter-select]');
    const keep = sel.value;
    sel.replaceChildren();
    for (const m of meters) {
      const o = document.createElement('option');
      o.value = m.slug;
      o.textContent = m.slug + (m.built_in ? ' (built in)' : '');
      sel.append(o);
    }
    if (keep && meters.some((m) => m.slug === keep)) sel.value = keep;
    fillGroups();
  }

  function fillGroups() {
    const m = meters.find((x) => x.slug === $('[data-meter-select]').value);
    const sel = $('[data-group-select]');
    sel.replaceChildren();
    const none = document.createElement('option');
    none.value = '';
    none.textContent = 'None';
    sel.append(none);
    for (const g of (m && m.group_by) || []) {
      const o = document.createElement('option');
      o.value = g;
      o.textContent = g;
      sel.append(o);
    }
  }

  async function load() {
    try {
      meters = (await api('/api/analytics/meters')).meters;
      renderList();
      show('[data-error]', null);
    } catch (err) {
      show('[data-error]', err);
    }
  }

  function startEdit(m) {
    const f = $('[data-meter-form]');
    f.elements.editing.value = m.slug;
    f.elements.slug.value = m.slug;
    f.elements.slug.readOnly = true;
    f.elements.event.value = m.event;
    f.elements.aggregation.value = m.aggregation;
    f.elements.value_property.value = m.value_property || '';
    f.elements.group_by.value = (m.group_by || []).join(', ');
    f.elements.description.value = m.description || '';
    $('[data-meter-submit]').textContent = 'Save';
    f.elements.event.focus();
  }

  function resetForm() {
    const f = $('[data-meter-form]');
    f.elements.editing.value = '';
    f.elements.slug.readOnly = false;
    $('[data-meter-submit]').textContent = 'Create';
  }

  async function submit(ev) {
    ev.preventDefault();
    const f = ev.target;
    const groupBy = f.elements.group_by.value.split(',').map((s) => s.trim()).filter(Boolean);
    const def = {
      event: f.elements.event.value.trim(),
      aggregation: f.elements.aggregation.value,
      value_property: f.elements.value_property.value.trim(),
      group_by: groupBy,
      description: f.elements.description.value,
    };
    const editing = f.elements.editing.value;
    try {
      if (editing) {
        await api('/api/analytics/meters/' + encodeURIComponent(editing), { method: 'PATCH', body: JSON.stringify(def) });
      } else {
        def.slug = f.elements.slug.value.trim();
        await api('/api/analytics/meters', { method: 'POST', body: JSON.stringify(def) });
      }
      show('[data-form-error]', null);
      const slug = editing || def.slug;
      f.reset();
      resetForm();
      await load();
      $('[data-meter-select]').value = slug;
      fillGroups();
      await drawChart();
    } catch (err) {
      show('[data-form-error]', err);
    }
  }

  async function remove(slug) {
    try {
      await api('/api/analytics/meters/' + encodeURIComponent(slug), { method: 'DELETE' });
      await load();
    } catch (err) {
      show('[data-error]', err);
    }
  }

  async function drawChart(ev) {
    if (ev) ev.preventDefault();
    const f = $('[data-chart-form]');
    const slug = f.elements.meter.value;
    if (!slug) return;
    const days = Math.max(1, Math.min(400, Number(f.elements.days.value) || 30));
    const to = new Date();
    const from = new Date(to.getTime() - days * 86400e3);
    const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), window: f.elements.window.value });
    const tz = f.elements.tz.value.trim();
    if (tz) q.set('tz', tz);
    const group = f.elements.group_by.value;
    if (group) q.set('group_by', group);
    const el = $('[data-chart="meter"]');
    let res;
    try {
      res = await api('/api/analytics/meters/' + encodeURIComponent(slug) + '/query?' + q.toString());
      show('[data-error]', null);
    } catch (err) {
      show('[data-error]', err);
      return;
    }
    if (chart) {
      chart.destroy();
      chart = null;
    }
    el.replaceChildren();
    el.dataset.points = String(res.data.length);
    // One series per group, over the windows of the first.
    const series = new Map();
    const xs = [];
    for (const p of res.data) {
      const key = group ? String(p.group_by[group] == null ? '(none)' : p.group_by[group]) : slug;
      if (!series.has(key)) series.set(key, []);
      const ys = series.get(key);
      if (series.size === 1) xs.push(Date.parse(p.window_start) / 1000);
      ys.push(p.value);
    }
    if (typeof uPlot === 'undefined' || xs.length === 0) return;
    const opts = {
      width: Math.max(el.clientWidth, 200),
      height: 260,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), res.tz),
      padding: [12, 20, 0, 0],
      scales: { x: { time: true } },
      series: [{ label: 'Window' }].concat(Array.from(series.keys()).map((k, i) => ({
        label: k,
        stroke: palette[i % palette.length],
        width: 2,
        value: (u, v) => (v == null ? '—' : num.format(v)),
      }))),
    };
    chart = new uPlot(opts, [xs].concat(Array.from(series.values())), el);
  }

  $('[data-meter-form]').addEventListener('submit', submit);
  $('[data-meter-form]').addEventListener('reset', resetForm);
  $('[data-chart-form]').addEventListener('submit', drawChart);
  $('[data-meter-select]').addEventListener('change', () => { fillGroups(); drawChart(); });
  load().then(() => drawChart());
})();
