// One job, live: status, progress, loss and PSNR/SSIM curves from its Server-Sent Events, sample grids, checkpoints, cancel.
import { EventSourceParserStream } from '/console/vendor/eventsource-parser/stream.js';
import { asAdmin, call, getJson } from './api.js';
import { lineChart } from './charts.js';
import { formatDuration, formatNumber, formatTime, h, setBlob } from './dom.js';

const TERMINAL = ['succeeded', 'failed', 'cancelled'];
const JOB_EVENTS = ['queued', 'status', 'started', 'finished', 'exported', 'error', 'cancelled', 'cancel_requested', 'recovered', 'interrupted'];

const stat = (label, value) => h('div.stat', {}, h('div.label', {}, label), h('div.value', {}, value));

export class JobView {
  constructor(root, id, { onChange, onError }) {
    this.root = root;
    this.id = id;
    this.onChange = onChange;
    this.onError = onError;
    this.abort = new AbortController();
    this.lastEventId = 0;
    this.losses = { names: [], points: [] };
    this.sampleStep = null;
    this.build();
    this.start().catch((err) => this.failed(err));
  }

  build() {
    const el = (this.el = {
      status: h('span.badge', {}, '…'),
      cancel: h('button.danger', { type: 'button', id: 'cancel-job', hidden: true, onclick: () => this.cancel() }, 'Cancel'),
      facts: h('dl.facts'),
      progressBar: h('span', { style: undefined }),
      stats: h('div.stats'),
      outcome: h('div'),
      lossChart: h('div.chart#loss-chart', {}, h('div.chart-empty', {}, 'Loss curves appear with the first progress event.')),
      psnrChart: h('div.chart#psnr-chart', {}, h('div.chart-empty', {}, 'PSNR and SSIM of the held-out images appear at the first evaluation (every eval_every steps, and at the end).')),
      ssimChart: h('div.chart#ssim-chart'),
      sampleSteps: h('div.sample-steps'),
      sample: h('div.samples#samples', {}, h('div.chart-empty', {}, 'The trainer writes a grid of held-out images (top) and their reconstructions (below) at each evaluation.')),
      checkpoints: h('tbody'),
    });
    this.root.replaceChildren(
      h('section.card', {},
        h('div.job-head', {}, h('h2', {}, this.id), el.status, h('span.spacer'), el.cancel),
        el.facts,
        h('div.progress', {}, el.progressBar),
        el.stats,
        el.outcome,
      ),
      h('section.card', {}, h('h2', {}, 'Losses'), el.lossChart),
      h('section.card', {}, h('h2', {}, 'Evaluation'), h('div.chart-pair', {}, el.psnrChart, el.ssimChart)),
      h('section.card', {}, h('h2', {}, 'Sample reconstructions'), el.sampleSteps, el.sample),
      h('section.card', {}, h('h2', {}, 'Checkpoints'),
        h('table.list', {}, h('thead', {}, h('tr', {}, ['step', 'file', 'saved', 'kept'].map((t) => h('th', {}, t)))), el.checkpoints)),
    );
    this.root.dataset.job = this.id;
    this.root.dataset.lossPoints = '0';
    this.root.dataset.evalPoints = '0';
  }

  close() {
    this.abort.abort();
    for (const chart of [this.lossChart, this.psnrChart, this.ssimChart]) chart?.destroy();
  }

  get closed() {
    return this.abort.signal.aborted;
  }

  failed(err) {
    if (!this.closed) this.onError(err);
  }

  async start() {
    await this.refreshJob();
    await Promise.all([this.refreshCheckpoints(), this.refreshSamples()]);
    await this.follow();
  }

  /** The event stream (the whole history first, then live), resumed after the last event seen until the job has ended. */
  async follow() {
    while (!this.closed) {
      const res = await call(`/jobs/${this.id}/events?after=${this.lastEventId}`, asAdmin({ headers: { accept: 'text/event-stream' }, signal: this.abort.signal }));
      const reader = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.handle(JSON.parse(value.data));
        this.lastEventId = Number(value.id);
      }
      const job = await this.refreshJob();
      if (TERMINAL.includes(job.status)) {
        await Promise.all([this.refreshCheckpoints(), this.refreshSamples()]);
        return;
      }
    }
  }

  handle(event) {
    const data = event.data ?? {};
    if (event.type === 'progress') {
      this.addLosses(Number(data.step), data.losses ?? {});
      this.showProgress({ step: data.step, total: data.total, eta: data.eta_s, rate: data.images_per_s });
    } else if (event.type === 'eval') {
      this.addEval(Number(data.step), data);
      this.refreshSamples().catch((err) => this.failed(err));
    } else if (event.type === 'checkpoint') {
      this.refreshCheckpoints().catch((err) => this.failed(err));
    } else if (JOB_EVENTS.includes(event.type)) {
      this.refreshJob().catch((err) => this.failed(err));
    }
  }

  addLosses(step, losses) {
    const names = Object.keys(losses);
    this.losses.points.push([step, losses]);
    if (names.some((n) => !this.losses.names.includes(n)) || !this.lossChart) {
      // a new curve (e.g. the adversarial losses from disc_start on): draw the chart again with it
      this.losses.names = [...new Set([...this.losses.names, ...names])];
      this.lossChart?.destroy();
      this.el.lossChart.replaceChildren();
      this.lossChart = lineChart(this.el.lossChart, { xLabel: 'step', series: this.losses.names }); // linear: adversarial losses can be negative
      for (const [s, l] of this.losses.points) this.lossChart.add(s, l);
    } else {
      this.lossChart.add(step, losses);
    }
    this.root.dataset.lossPoints = String(this.lossChart.count());
  }

  addEval(step, data) {
    if (!this.psnrChart) {
      this.el.psnrChart.replaceChildren();
      this.psnrChart = lineChart(this.el.psnrChart, { title: 'PSNR (dB)', xLabel: 'step', series: ['psnr'], height: 200 });
      this.ssimChart = lineChart(this.el.ssimChart, { title: 'SSIM', xLabel: 'step', series: ['ssim'], height: 200 });
    }
    this.psnrChart.add(step, { psnr: data.psnr });
    this.ssimChart.add(step, { ssim: data.ssim });
    this.lastEval = data;
    this.root.dataset.evalPoints = String(this.psnrChart.count());
  }

  showProgress({ step, total, eta, rate }) {
    this.el.progressBar.style.width = `${total ? Math.min(100, (100 * step) / total) : 0}%`;
    this.el.stats.replaceChildren(
      stat('Step', total ? `${step} / ${total}` : String(step)),
      stat('Images/s', formatNumber(rate ?? null)),
      stat('Time left', eta === undefined || eta === null ? '—' : formatDuration(eta)),
      ...(this.lastEval ? [stat(`PSNR at step ${this.lastEval.step}`, `${formatNumber(this.lastEval.psnr, 4)} dB`), stat('SSIM', formatNumber(this.lastEval.ssim, 3))] : []),
    );
  }

  async refreshJob() {
    const job = await getJson(`/jobs/${this.id}`, asAdmin({ signal: this.abort.signal }));
    if (this.closed) return job;
    const changed = this.root.dataset.status !== job.status;
    this.root.dataset.status = job.status;
    this.el.status.className = `badge ${job.status}`;
    this.el.status.textContent = job.cancel_requested_at && !TERMINAL.includes(job.status) ? `${job.status}, cancelling` : job.status;
    this.el.cancel.hidden = TERMINAL.includes(job.status) || Boolean(job.cancel_requested_at);
    const facts = [
      ['Base model', `${job.base_model.name} v${job.base_model.version}`],
      ['Dataset', job.dataset],
      ['Publishes', job.output_model],
      ['Created', formatTime(job.created_at)],
      ['Started', formatTime(job.started_at)],
      ['Finished', formatTime(job.finished_at)],
      ['Attempts', String(job.attempts)],
    ];
    const settings = Object.entries(job.hyperparameters);
    this.el.facts.replaceChildren(
      ...facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
      h('dt', {}, 'Hyperparameters'),
      h('dd', {}, h('details', {}, h('summary', {}, `${settings.length} settings`), h('pre.manifest', {}, settings.map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join('\n')))),
    );
    this.showProgress({ step: job.progress.step, total: job.progress.total_steps, eta: job.progress.eta_seconds, rate: job.progress.images_per_second });
    this.el.outcome.replaceChildren(
      ...(job.result
        ? [h('a.result-link#result-link', { href: `/?model=${encodeURIComponent(job.result.model)}&version=${job.result.version}` }, `Open ${job.result.model} v${job.result.version} in the playground →`)]
        : []),
      ...(job.error
        ? [h('div.alert', {}, h('strong', {}, 'The job failed'), h('p', {}, job.error.message), job.error.stderr_tail ? h('details', {}, h('summary', {}, 'Trainer output'), h('pre.stderr', {}, job.error.stderr_tail)) : null)]
        : []),
    );
    if (changed) this.onChange();
    return job;
  }

  async cancel() {
    this.el.cancel.disabled = true;
    try {
      await call(`/jobs/${this.id}/cancel`, asAdmin({ method: 'POST' }));
      await this.refreshJob();
    } catch (err) {
      this.failed(err);
    } finally {
      this.el.cancel.disabled = false;
    }
  }

  async refreshCheckpoints() {
    const { data } = await getJson(`/jobs/${this.id}/checkpoints`, asAdmin({ signal: this.abort.signal }));
    this.el.checkpoints.replaceChildren(
      ...(data.length
        ? data.map((k) => h('tr', {}, h('td', {}, k.step), h('td', {}, h('code', {}, k.file)), h('td', {}, formatTime(k.created_at)), h('td', {}, k.available ? 'yes' : 'pruned')))
        : [h('tr', {}, h('td', { colspan: 4 }, h('span.muted', {}, 'None yet.')))]),
    );
  }

  async refreshSamples() {
    const { data } = await getJson(`/jobs/${this.id}/samples`, asAdmin({ signal: this.abort.signal }));
    if (!data.length || this.closed) return;
    const latest = data.at(-1).step;
    const follow = this.sampleStep === null || this.sampleStep === this.shownLatest; // keep a step the user picked
    this.shownLatest = latest;
    this.el.sampleSteps.replaceChildren(
      ...data.map((s) => h('button', { type: 'button', dataset: { step: s.step }, onclick: () => this.showSample(s.step) }, `step ${s.step}`)),
    );
    await this.showSample(follow ? latest : this.sampleStep);
    this.root.dataset.samples = String(data.length);
  }

  async showSample(step) {
    this.sampleStep = step;
    this.el.sampleSteps.querySelectorAll('button').forEach((b) => b.classList.toggle('selected', Number(b.dataset.step) === step));
    const res = await call(`/jobs/${this.id}/samples/${step}`, asAdmin({ signal: this.abort.signal }));
    const img = this.el.sample.querySelector('img') ?? h('img', { alt: 'Held-out images (top) and their reconstructions (below)' });
    await setBlob(img, await res.blob());
    this.el.sample.replaceChildren(img, h('p.hint', {}, `Step ${step}: held-out images (top) and their reconstructions through the tokens (below).`));
  }
}
