// The trainer's interpreter for tests: FQ_PYTHON, with the service's own default (src/config.ts).
import { DEFAULT_PYTHON } from '../../src/config.ts';

export const PYTHON = process.env.FQ_PYTHON || DEFAULT_PYTHON;
