// The browser half of scripts/check-book-in-browser: serve the book on 127.0.0.1, visit every
// page at phone and desktop width in headless Chromium, and fail on anything a reader would
// notice.
import { createRequire } from 'node:module';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(path.resolve(process.env.BOOK, '..', 'node_modules', 'x.js'));
const { chromium } = require('playwright-core');

const book = path.resolve(process.env.BOOK);
const shots = path.resolve(process.env.SHOTS);
fs.mkdirSync(shots, { recursive: true });

const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml',
  '.json': 'application/json', '.woff2': 'font/woff2', '.woff': 'font/woff', '.png': 'image/png' };
const server = http.createServer((req, res) => {
  const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  let file = path.join(book, url.endsWith('/') ? url + 'index.html' : url);
  if (!file.startsWith(book) || !fs.existsSync(file)) { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

// toc.html is mdBook's sidebar for readers without JavaScript, not a page of its own.
const pages = fs.readdirSync(book).filter((f) => f.endsWith('.html') && !['404.html', 'toc.html'].includes(f)).sort();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const problems = [];
const PHONE_WHOLE = ['introduction.html', 'ch05-round-robin.html', 'ch08-complete-picture.html', 'ch11-cost.html'];
for (const [label, viewport] of [['phone', { width: 390, height: 844 }], ['desktop', { width: 1280, height: 900 }]]) {
  const context = await browser.newContext({ viewport });
  for (const name of pages) {
    const page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`${label} ${name}: console: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`${label} ${name}: ${e.message}`));
    await page.goto(`${base}/${name}`, { waitUntil: 'load' });
    // A closed <details> lays nothing out: open every fold (a whole trace, an answer) so its
    // blocks are measured too, and close them again for the screenshot.
    await page.evaluate(() => {
      document.querySelectorAll('main details:not([open])').forEach((d) => {
        d.open = true;
        d.dataset.openedByCheck = '';
      });
    });
    const report = await page.evaluate(() => ({
      raw: document.body.innerText.includes('{{#'),
      code: document.querySelectorAll('main pre code').length,
      plain: [...document.querySelectorAll('main pre code')].filter((c) => !c.className.includes('hljs')).length,
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      // A code block whose longest line is wider than the block: its end is cut off, or hidden
      // behind a scroll bar. A block marked `diagram` (```text,diagram) keeps its columns and
      // shrinks its type to fit instead; it may not scroll either. Traces folded in <details>
      // are open.
      cut: [...document.querySelectorAll('main pre code')]
        .filter((c) => c.scrollWidth > c.clientWidth + 1)
        .map((c) => ({
          diagram: c.classList.contains('diagram'),
          folded: c.closest('details') !== null,
          by: c.scrollWidth - c.clientWidth,
          line: c.innerText.split('\n').reduce((a, b) => (b.length > a.length ? b : a), '').slice(0, 60),
        })),
    }));
    if (report.raw) problems.push(`${label} ${name}: raw {{# left in the page`);
    if (report.plain) problems.push(`${label} ${name}: ${report.plain} code blocks without highlighting`);
    if (report.overflow > 2) problems.push(`${label} ${name}: ${report.overflow}px wider than the screen`);
    for (const c of report.cut) {
      problems.push(`${label} ${name}: a code block is cut by ${c.by}px${c.folded ? ' (in a fold)' : ''}: "${c.line}..."`);
    }
    await page.evaluate(() => {
      document.querySelectorAll('main details[data-opened-by-check]').forEach((d) => { d.open = false; });
    });
    if (name !== 'print.html') {
      // The whole page at desktop width, and on a phone for the pages with the widest drawings
      // (the opening picture, chapter 5's and 8's diagrams, chapter 11's chart and tables).
      const whole = label === 'desktop' || PHONE_WHOLE.includes(name);
      await page.screenshot({ path: path.join(shots, `${label}-${name}.png`), fullPage: whole });
    }
    await page.close();
  }
  await context.close();
}
// Search: the box opens, a word from chapter 5 finds results.
const page = await browser.newPage();
await page.goto(`${base}/index.html`);
await page.click('#mdbook-search-toggle');
await page.waitForSelector('#mdbook-searchbar', { state: 'visible' });
await page.type('#mdbook-searchbar', 'socketpair', { delay: 20 });
try {
  await page.waitForSelector('#mdbook-searchresults li', { timeout: 10000 });
} catch { problems.push('search: no results for "socketpair"'); }
await browser.close();
server.close();
console.log(`${pages.length} pages checked at phone and desktop width; screenshots in ${shots}`);
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('ok: no console errors, no raw includes, code highlighted, fits a phone, no code block cut, search works');
