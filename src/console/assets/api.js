// The console's only door to fqtok: fetch calls to the public HTTP API, problem+json turned into errors, the admin token.

/** An error answer of the API: its problem+json (title, status, detail, errors per field). */
export class ApiError extends Error {
  constructor(problem, status) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
  }
}

async function failure(res) {
  const type = res.headers.get('content-type') ?? '';
  const problem = type.includes('json') ? await res.json().catch(() => null) : { detail: await res.text().catch(() => '') };
  return new ApiError(problem, res.status);
}

/** fetch that throws an ApiError for any answer that is not 2xx. */
export async function call(path, init = {}) {
  const res = await fetch(path, init);
  if (!res.ok) throw await failure(res);
  return res;
}

export const getJson = async (path, init) => (await call(path, init)).json();

export function postJson(path, body, init = {}) {
  return call(path, { ...init, method: 'POST', headers: { 'content-type': 'application/json', ...init.headers }, body: JSON.stringify(body) });
}

// The admin token lives in this tab's sessionStorage only: never in a URL, a cookie or another tab.
const TOKEN_KEY = 'fqtok.adminToken';
export const adminToken = () => sessionStorage.getItem(TOKEN_KEY);
export const setAdminToken = (token) => sessionStorage.setItem(TOKEN_KEY, token);
export const forgetAdminToken = () => sessionStorage.removeItem(TOKEN_KEY);

/** init with the Authorization: Bearer header of the admin token added. */
export function asAdmin(init = {}) {
  return { ...init, headers: { ...init.headers, authorization: `Bearer ${adminToken() ?? ''}` } };
}

/** The codes of the images encoded in the playground in this tab, per model version (for the usage chart). */
const RECENT_KEY = 'fqtok.recentCodes';
const RECENT_LIMIT = 64;

export function recentCodes() {
  try {
    return JSON.parse(sessionStorage.getItem(RECENT_KEY) ?? '{}');
  } catch {
    return {};
  }
}

export function rememberCodes(model, version, images) {
  const all = recentCodes();
  const key = `${model}@${version}`;
  all[key] = [...(all[key] ?? []), ...images.map((i) => ({ tokens: i.tokens }))].slice(-RECENT_LIMIT);
  try {
    sessionStorage.setItem(RECENT_KEY, JSON.stringify(all));
  } catch {
    // storage full: the usage chart just has fewer recent images to show
  }
}
