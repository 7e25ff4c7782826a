// Line charts on uPlot: one x series and named y series, sized to their container, that can take new points.
import uPlot from '/console/vendor/uPlot.esm.js';

const PALETTE = ['#2f6fde', '#e8833a', '#1f8f5f', '#c4392f', '#8a5cd1', '#b7791f', '#16a3b8', '#d6457a', '#5b6b82'];

/**
 * A chart in `container`: x values named `xLabel`, one line per name in `series`.
 * `axes` may put a series on a second y axis ({ right: ['ssim'] }); `log` makes y logarithmic.
 * Returns { add(x, values), set(xs, columns), count() }.
 */
export function lineChart(container, { title, xLabel, series, right = [], log = false, height = 240 }) {
  const width = () => Math.max(280, container.clientWidth - 4);
  const data = [[], ...series.map(() => [])];
  const plot = new uPlot(
    {
      title,
      width: width(),
      height,
      scales: { x: { time: false }, y: log ? { distr: 3 } : {}, r: {} },
      legend: { live: true },
      series: [
        { label: xLabel },
        ...series.map((name, i) => ({ label: name, stroke: PALETTE[i % PALETTE.length], width: 1.6, scale: right.includes(name) ? 'r' : 'y', points: { size: 4 } })),
      ],
      axes: [{ label: xLabel }, { scale: 'y' }, ...(right.length ? [{ scale: 'r', side: 1, grid: { show: false } }] : [])],
    },
    data,
    container,
  );
  const resize = new ResizeObserver(() => plot.setSize({ width: width(), height }));
  resize.observe(container);
  return {
    add(x, values) {
      data[0].push(x);
      series.forEach((name, i) => data[i + 1].push(values[name] ?? null));
      plot.setData(data);
    },
    count: () => data[0].length,
    destroy() {
      resize.disconnect();
      plot.destroy();
    },
  };
}
