// execArgv for worker threads whose entry file is TypeScript.

/**
 * Worker threads inherit the parent's execArgv, which carries tsx's loader when fqtok runs under
 * tsx; the worker is a .ts file, so make sure the loader is there even if the parent was started
 * some other way.
 */
export function workerExecArgv(): string[] {
  const inherited = process.execArgv;
  return inherited.some((arg) => arg.includes('tsx')) ? inherited : [...inherited, '--import', import.meta.resolve('tsx')];
}
