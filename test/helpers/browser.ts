// Debian's chromium driven by puppeteer-core (nothing downloads a browser): a fresh profile per run, and every page watched for errors.
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

export const CHROMIUM = process.env.FQ_TEST_CHROMIUM ?? '/usr/bin/chromium';

export interface TestBrowser {
  browser: Browser;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does)`);
  const profile = await mkdtemp(path.join(tmpdir(), 'fqtok-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', // CI runs as root
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
    ],
    timeout: 60_000,
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => browser.process()?.kill('SIGKILL'));
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** What went wrong in a page: console errors, uncaught exceptions, failed requests and HTTP errors, except the ones a test expects. */
export class PageProblems {
  readonly seen: string[] = [];
  private readonly expected: { status: number; path: string }[] = [];

  constructor(page: Page) {
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const text = m.text();
      // Chrome logs every HTTP error answer as a console error too; an expected answer is not a problem.
      const status = /status of (\d{3})/.exec(text)?.[1];
      if (status && this.expected.some((e) => String(e.status) === status && (m.location().url ?? '').includes(e.path))) return;
      this.seen.push(`console error: ${text} (${m.location().url ?? ''})`);
    });
    page.on('pageerror', (err) => this.seen.push(`uncaught: ${(err as Error).message ?? err}`));
    page.on('requestfailed', (r) => this.seen.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ''}`));
    page.on('response', (r) => {
      const url = new URL(r.url());
      if (r.status() >= 400 && !this.expected.some((e) => e.status === r.status() && url.pathname === e.path)) {
        this.seen.push(`HTTP ${r.status()}: ${r.request().method()} ${url.pathname}${url.search}`);
      }
    });
  }

  /** The next answers with this status on this path are part of the test (e.g. a 403 for a wrong token). */
  expect(status: number, path: string): void {
    this.expected.push({ status, path });
  }
}

/** A new tab (its own sessionStorage) with its problems recorded; viewport wide enough for the two-column layouts. */
export async function openTab(browser: Browser): Promise<{ page: Page; problems: PageProblems }> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1360, height: 900 });
  page.setDefaultTimeout(60_000);
  return { page, problems: new PageProblems(page) };
}
