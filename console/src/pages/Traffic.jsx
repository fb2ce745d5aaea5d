import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useApi } from '../poll.js';
import { Loading } from '../format.jsx';

const REFRESH_MS = 5000;
const WINDOW_MINUTES = 15;
const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777'];

// One chart per measure, one line per model (requests and errors also show the total).
const perSecond = (t) => `${+t.toFixed(2)}/s`;
const duration = (ms) => (ms >= 1000 ? `${+(ms / 1000).toFixed(2)} s` : `${+ms.toFixed(1)} ms`);

const CHARTS = [
  { id: 'requests', title: 'Requests / s', format: perSecond, pick: (m) => m.requests_per_second, total: 'requests_per_second' },
  { id: 'errors', title: 'Errors / s', format: perSecond, pick: (m) => m.errors_per_second, total: 'errors_per_second' },
  {
    id: 'interventions',
    title: 'Guardrail interventions / s',
    format: perSecond,
    pick: (m) => m.guardrail_interventions_per_second,
  },
  { id: 'p50', title: 'Latency p50 (log scale)', format: duration, log: true, pick: (m) => m.latency_ms.p50 },
  { id: 'p95', title: 'Latency p95 (log scale)', format: duration, log: true, pick: (m) => m.latency_ms.p95 },
  { id: 'p99', title: 'Latency p99 (log scale)', format: duration, log: true, pick: (m) => m.latency_ms.p99 },
];

export function Traffic({ onUnauthorized }) {
  const { data, error } = useApi(`traffic?minutes=${WINDOW_MINUTES}`, onUnauthorized, REFRESH_MS);
  if (!data) return <Loading error={error} />;
  return (
    <>
      <p class="muted">
        Last {WINDOW_MINUTES} minutes in {data.interval_seconds} s steps, from the gateway's own metrics; refreshed every 5 s.
        {data.models.length === 0 && ' No model has had traffic yet.'}
      </p>
      {error && <p class="error" role="alert">Refresh failed: {error}</p>}
      <div class="charts">
        {CHARTS.map((chart) => (
          <Chart chart={chart} traffic={data} />
        ))}
      </div>
    </>
  );
}

function windowEndingAt(lastSample) {
  const end = lastSample ?? Date.now() / 1000;
  return [end - WINDOW_MINUTES * 60, end];
}

function seriesOf(chart, traffic) {
  const lines = traffic.models.map((m, i) => ({
    label: m.model,
    values: chart.pick(m),
    stroke: PALETTE[i % PALETTE.length],
  }));
  if (chart.total && traffic.totals) {
    lines.unshift({ label: 'all models', values: traffic.totals[chart.total], stroke: '#64748b', dash: [6, 4] });
  }
  return lines;
}

function Chart({ chart, traffic }) {
  const holder = useRef(null);
  const plot = useRef(null);
  const lines = seriesOf(chart, traffic);
  const shape = lines.map((l) => l.label).join('\n');

  // The chart is rebuilt when its set of lines changes, and only fed new data otherwise.
  useEffect(() => {
    const width = Math.max(280, holder.current.clientWidth);
    plot.current = new uPlot(
      {
        width,
        height: 220,
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          // Always the whole window, ending at the last sample: a young gateway's few samples
          // sit at the right instead of being stretched over the chart.
          x: { time: true, range: (_u, _min, max) => windowEndingAt(max) },
          // Latencies span milliseconds (an echo) to seconds (retried throttling): on a log
          // scale both stay readable.
          y: chart.log
            ? { distr: 3, log: 10 }
            : { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        },
        // A log scale leaves some ticks unlabelled (null).
        axes: [{}, { values: (_u, ticks) => ticks.map((t) => (t == null ? '' : chart.format(t))), size: 70 }],
        series: [
          {},
          ...lines.map((l) => ({ label: l.label, stroke: l.stroke, width: 2, dash: l.dash, spanGaps: false })),
        ],
      },
      [traffic.timestamps, ...lines.map((l) => l.values)],
      holder.current,
    );
    const resize = () => plot.current?.setSize({ width: Math.max(280, holder.current.clientWidth), height: 220 });
    addEventListener('resize', resize);
    return () => {
      removeEventListener('resize', resize);
      plot.current.destroy();
      plot.current = null;
    };
  }, [shape]);

  useEffect(() => {
    plot.current?.setData([traffic.timestamps, ...lines.map((l) => l.values)]);
  }, [traffic]);

  return (
    <figure class="chart" data-testid={`chart-${chart.id}`}>
      <figcaption>{chart.title}</figcaption>
      <div ref={holder} />
    </figure>
  );
}
