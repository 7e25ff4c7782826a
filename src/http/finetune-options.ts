// Admin routes that say what a fine-tuning request may name: the datasets, and the trainer's settings with defaults and limits.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppDeps } from './app-deps.ts';
import { listDatasets } from '../jobs/dataset-list.ts';
import { trainerFields } from '../jobs/trainer-fields.ts';
import { adminAuth } from './admin-auth.ts';
import { problems } from './schemas.ts';
import { validationHook } from './validation.ts';

const security = [{ bearerAuth: [] }];

const DatasetListSchema = z
  .object({
    object: z.literal('list'),
    data: z.array(
      z.object({
        name: z.string().openapi({ description: 'What `dataset` names in POST /jobs/finetune' }),
        images: z.number().int().openapi({ description: 'Image files found (by extension)' }),
        complete: z.boolean().openapi({ description: 'False when the count stopped early (a quick look at 10,000 entries): there are at least `images`' }),
        problem: z.string().nullable().openapi({ description: 'Why a job naming this dataset would be refused, or null' }),
      }),
    ),
  })
  .openapi('DatasetList');

const TrainerFieldSchema = z
  .object({
    name: z.string(),
    type: z.enum(['boolean', 'integer', 'number', 'string', 'object']),
    nullable: z.boolean(),
    default: z.unknown().openapi({ description: "The trainer's default, used when the request leaves the field out" }),
    help: z.string(),
    minimum: z.number().optional(),
    exclusiveMinimum: z.number().optional(),
    exclusiveMaximum: z.number().optional(),
    enum: z.array(z.string()).optional(),
  })
  .openapi('TrainerField');

const TrainerFieldsSchema = z
  .object({
    hyperparameters: z.array(TrainerFieldSchema).openapi({ description: 'What `hyperparameters` may hold' }),
    device: z.array(TrainerFieldSchema).openapi({ description: 'What `device` may hold' }),
  })
  .openapi('FinetuneFields');

const datasetsRoute = createRoute({
  method: 'get',
  path: '/datasets',
  operationId: 'listDatasets',
  tags: ['fine-tuning'],
  summary: 'List the datasets a fine-tuning job may name (admin)',
  description: 'The folders directly under FQ_DATASETS_DIR, by name, with a quick count of their image files; one a job would be refused for says why.',
  security,
  responses: { 200: { description: 'Datasets by name', content: { 'application/json': { schema: DatasetListSchema } } }, ...problems(401, 403, 404) },
});

const fieldsRoute = createRoute({
  method: 'get',
  path: '/jobs/finetune/hyperparameters',
  operationId: 'getFinetuneFields',
  tags: ['fine-tuning'],
  summary: "The trainer's hyperparameters and device settings, with defaults and limits (admin)",
  description:
    'Asked of the trainer itself (`python -m fqgan.spec_fields`), so a form shows what POST /jobs/finetune will accept. Limits use JSON Schema words: `minimum`, `exclusiveMinimum`, `exclusiveMaximum`, `enum`.',
  security,
  responses: { 200: { description: 'Fields', content: { 'application/json': { schema: TrainerFieldsSchema } } }, ...problems(401, 403, 404) },
});

export function finetuneOptionRoutes(deps: AppDeps) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  const auth = adminAuth(deps.config);
  app.use('/datasets', auth);
  app.use('/jobs/finetune/hyperparameters', auth);
  return app
    .openapi(datasetsRoute, async (c) => c.json({ object: 'list' as const, data: await listDatasets(deps.config.datasetsDir) }, 200))
    .openapi(fieldsRoute, async (c) => c.json(await trainerFields(deps.config.python), 200));
}
