// embed.js draws the charts of the embedded usage view (/embed/usage)
// from the series the page carries; the numbers are in the page already.
(function () {
  'use strict';
  var el = document.getElementById('embed-data');
  if (!el || typeof uPlot === 'undefined') return;
  var usage = JSON.parse(el.textContent || '[]') || [];
  var primary = getComputedStyle(document.documentElement).getPropertyValue('--primary').trim() || '#4338ca';
  usage.forEach(function (u) {
    var box = document.getElementById('chart-' + u.metric);
    if (!box) return;
    var xs = [], ys = [];
    (u.points || []).forEach(function (p) {
      xs.push(Date.parse(p.window_start) / 1000);
      ys.push(p.value == null ? null : p.value);
    });
    var width = Math.max(240, box.clientWidth || 480);
    new uPlot({
      width: width, height: 140,
      legend: { show: false },
      scales: { x: { time: true } },
      axes: [{}, { size: 50 }],
      series: [{}, { label: u.metric, stroke: primary, fill: primary + '22', width: 2 }]
    }, [xs, ys], box);
    box.setAttribute('data-drawn', String(xs.length));
  });
})();
