// Validates live responses against the app's OpenAPI document (JSON Schema 2020-12 via ajv).
import { Ajv2020 } from 'ajv/dist/2020.js';
import assert from 'node:assert/strict';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { openApiDocument } from '../../src/http/openapi-document.ts';

type Doc = ReturnType<typeof openApiDocument>;

export class ResponseValidator {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly doc: Doc;

  constructor(app: OpenAPIHono) {
    this.doc = openApiDocument(app);
  }

  /** Asserts the response's status and content type are documented for the route and its JSON body fits the schema. */
  async check(method: string, routePath: string, response: Response): Promise<void> {
    const operation = (this.doc.paths?.[routePath] as Record<string, any> | undefined)?.[method.toLowerCase()];
    assert.ok(operation, `${method} ${routePath} is not in the OpenAPI document`);
    const documented = operation.responses?.[String(response.status)];
    assert.ok(documented, `${method} ${routePath}: status ${response.status} is not documented`);
    const type = (response.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const media = documented.content?.[type];
    assert.ok(media, `${method} ${routePath} ${response.status}: content type ${type} is not documented`);
    if (type.endsWith('json')) {
      const validate = this.ajv.compile({ ...media.schema, components: this.doc.components });
      const body = await response.clone().json();
      assert.ok(validate(body), `${method} ${routePath} ${response.status}: ${this.ajv.errorsText(validate.errors)}`);
    }
  }
}
