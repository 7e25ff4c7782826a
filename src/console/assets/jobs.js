// Jobs (admin): the token gate, the job list, the form that starts a fine-tune, and the selected job's live view.
import { adminToken, asAdmin, forgetAdminToken, getJson, setAdminToken } from './api.js';
import { $, clearError, formatTime, h, showError } from './dom.js';
import { buildJobForm } from './job-form.js';
import { JobView } from './job-view.js';

const state = { selected: new URLSearchParams(location.search).get('job'), view: null, formBuilt: false };

function showGate() {
  state.view?.close();
  state.view = null;
  $('#jobs-ui').hidden = true;
  $('#token-gate').hidden = false;
  $('#token').focus();
}

async function unlock() {
  try {
    await refreshList();
  } catch (err) {
    if ([401, 403, 404].includes(err.status)) {
      forgetAdminToken(); // a wrong token is not kept for the next page
      showGate();
    }
    showError(err);
    return;
  }
  clearError();
  $('#token-gate').hidden = true;
  $('#jobs-ui').hidden = false;
  document.body.dataset.ready = 'true';
  if (!state.formBuilt) {
    state.formBuilt = true;
    buildJobForm($('#job-form'), { onCreated: (job) => select(job.id) }).catch(showError);
  }
  if (state.selected) select(state.selected);
}

function progressText(job) {
  const { step, total_steps: total } = job.progress;
  return total ? `${step} / ${total}` : String(step);
}

async function refreshList() {
  const { data } = await getJson('/jobs?limit=50', asAdmin());
  const rows = data.map((job) =>
    h('tr.clickable', { dataset: { job: job.id }, class: `clickable${job.id === state.selected ? ' selected' : ''}`, onclick: () => select(job.id) },
      h('td', {}, h('div', {}, job.output_model), h('div.muted', {}, `${job.base_model.name} · ${job.dataset}`)),
      h('td', {}, h(`span.badge.${job.status}`, {}, job.status)),
      h('td', {}, progressText(job)),
      h('td', {}, formatTime(job.created_at)),
    ),
  );
  $('#job-list tbody').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 4 }, h('span.muted', {}, 'No jobs yet.')))]));
}

function select(id) {
  state.selected = id;
  history.replaceState(null, '', `?job=${encodeURIComponent(id)}`);
  document.querySelectorAll('#job-list tr[data-job]').forEach((tr) => tr.classList.toggle('selected', tr.dataset.job === id));
  state.view?.close();
  state.view = new JobView($('#job-view'), id, { onChange: () => refreshList().catch(showError), onError: showError });
  refreshList().catch(showError);
}

$('#token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  setAdminToken($('#token').value.trim());
  $('#token').value = '';
  unlock();
});
$('#forget-token').addEventListener('click', () => {
  forgetAdminToken();
  showGate();
});
$('#refresh').addEventListener('click', () => refreshList().catch(showError));

if (adminToken()) unlock();
else {
  showGate();
  document.body.dataset.ready = 'true';
}
