// The form that starts a fine-tune: base model, dataset, output name, and the trainer's own settings with defaults and limits.
import { asAdmin, getJson, postJson } from './api.js';
import { $, clearError, h, showError } from './dom.js';

/** Shown first; the rest wait under "All hyperparameters". */
const MAIN = ['steps', 'batch_size', 'lr', 'eval_every', 'eval_images', 'checkpoint_every', 'log_every', 'perceptual_weight', 'semantic_weight', 'disc_start'];

function limitsText(f) {
  const parts = [];
  if (f.enum) return '';
  if (f.minimum !== undefined) parts.push(`≥ ${f.minimum}`);
  if (f.exclusiveMinimum !== undefined) parts.push(`> ${f.exclusiveMinimum}`);
  if (f.exclusiveMaximum !== undefined) parts.push(`< ${f.exclusiveMaximum}`);
  return parts.join(', ');
}

/** One input for a trainer field, named `section.name`, showing its default and limits. */
function fieldInput(section, f) {
  const id = `${section}-${f.name}`;
  const name = `${section}.${f.name}`;
  let input;
  if (f.enum) {
    input = h('select', { id, name }, f.enum.map((v) => h('option', { value: v, selected: v === f.default }, v)));
  } else if (f.type === 'boolean') {
    input = h('input', { id, name, type: 'checkbox', checked: f.default === true });
  } else if (f.type === 'integer' || f.type === 'number') {
    input = h('input', {
      id, name, type: 'number', inputmode: f.type === 'integer' ? 'numeric' : 'decimal', step: f.type === 'integer' ? 1 : 'any',
      min: f.minimum ?? f.exclusiveMinimum, max: f.exclusiveMaximum, value: f.default ?? '', placeholder: f.default === null ? 'default' : undefined,
    });
  } else {
    input = h('input', { id, name, value: f.default ?? '' });
  }
  input.dataset.field = name;
  const limits = limitsText(f);
  const help = h('small', {}, f.help, limits ? ` (${limits})` : '');
  if (f.type === 'boolean') return h('div.field.checkbox', { title: f.help }, input, h('label', { for: id }, f.name));
  return h('div.field', {}, h('label', { for: id }, f.name), input, help, h('small.field-error', { hidden: true }));
}

/** The field's value as the trainer takes it; undefined when it is the default (the trainer fills it in). */
function valueOf(f, input) {
  let value;
  if (f.type === 'boolean') value = input.checked;
  else if (f.type === 'integer' || f.type === 'number') {
    if (input.value.trim() === '') value = f.nullable ? null : undefined;
    else value = Number(input.value);
  } else value = input.value;
  return value === f.default || value === undefined ? undefined : value;
}

function changed(fields, section, form) {
  const out = {};
  for (const f of fields) {
    const value = valueOf(f, form.querySelector(`[data-field="${section}.${f.name}"]`));
    if (value !== undefined) out[f.name] = value;
  }
  return out;
}

function markErrors(form, errors) {
  form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  form.querySelectorAll('.field-error').forEach((el) => (el.hidden = true));
  for (const e of errors ?? []) {
    const input = form.querySelector(`[data-field="${e.field}"]`);
    if (!input) continue;
    input.setAttribute('aria-invalid', 'true');
    const box = input.closest('.field')?.querySelector('.field-error');
    if (box) {
      box.textContent = e.message;
      box.hidden = false;
    }
    input.closest('details')?.setAttribute('open', '');
  }
}

export async function buildJobForm(form, { onCreated }) {
  const [models, fields, datasets] = await Promise.all([
    getJson('/models'),
    getJson('/jobs/finetune/hyperparameters', asAdmin()),
    getJson('/datasets', asAdmin()).catch((err) => ({ error: err })),
  ]);
  const datasetField = datasets.error
    ? h('p.alert', {}, datasets.error.message)
    : datasets.data.length === 0
      ? h('p.notice', {}, 'No datasets: put a folder of images under FQ_DATASETS_DIR.')
      : h('select', { id: 'dataset', name: 'dataset', 'data-field': 'dataset' },
          datasets.data.map((d) => h('option', { value: d.name, disabled: Boolean(d.problem) }, `${d.name} (${d.images}${d.complete ? '' : '+'} images${d.problem ? `: ${d.problem}` : ''})`)));
  const base = h('select', { id: 'base_model', name: 'base_model', 'data-field': 'base_model' }, models.models.map((m) => h('option', { value: m.name, selected: m.default }, m.name)));
  const output = h('input', { id: 'output_model', name: 'output_model', 'data-field': 'output_model', value: `${base.value}-ft`, required: true, pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,63}' });
  base.addEventListener('change', () => (output.value = `${base.value}-ft`));
  const hp = fields.hyperparameters;
  const main = MAIN.map((name) => hp.find((f) => f.name === name)).filter(Boolean);
  const rest = hp.filter((f) => !MAIN.includes(f.name));
  const submit = h('button.primary', { type: 'submit', id: 'start-job' }, 'Start fine-tune');
  form.replaceChildren(
    h('div.form-grid', {},
      h('div.field', {}, h('label', { for: 'base_model' }, 'Base model'), base, h('small.field-error', { hidden: true })),
      h('div.field', {}, h('label', { for: 'dataset' }, 'Dataset'), datasetField, h('small.field-error', { hidden: true })),
      h('div.field.wide', {}, h('label', { for: 'output_model' }, 'Publish as'), output, h('small', {}, 'A new name starts at version 1; an existing one gets its next version.'), h('small.field-error', { hidden: true })),
      main.map((f) => fieldInput('hyperparameters', f)),
    ),
    h('details', {}, h('summary', {}, `All hyperparameters (${rest.length} more)`), h('div.form-grid', {}, rest.map((f) => fieldInput('hyperparameters', f)))),
    h('details', {}, h('summary', {}, 'Device'), h('div.form-grid', {}, fields.device.map((f) => fieldInput('device', f)))),
    h('div.buttons', {}, submit),
  );

  // One key per filled-in form: a double click or a retried request gives the same job, not two.
  let idempotencyKey = crypto.randomUUID();
  form.addEventListener('input', () => (idempotencyKey = crypto.randomUUID()));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError();
    submit.disabled = true;
    const body = {
      base_model: base.value,
      dataset: $('#dataset', form)?.value ?? '',
      output_model: output.value.trim(),
      hyperparameters: changed(hp, 'hyperparameters', form),
      device: changed(fields.device, 'device', form),
    };
    try {
      const res = await postJson('/jobs/finetune', body, asAdmin({ headers: { 'idempotency-key': idempotencyKey } }));
      markErrors(form, []);
      onCreated(await res.json());
    } catch (err) {
      markErrors(form, err.problem?.errors);
      showError(err);
    } finally {
      submit.disabled = false;
    }
  });
}
