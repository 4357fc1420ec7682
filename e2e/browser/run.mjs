// Browser side of keydelivery's end-to-end suite.
//
//   node run.mjs CONFIG.json
//
// The Go orchestrator (e2e/browser_test.go) writes CONFIG.json: Chromium's
// path, a fresh user data dir, the page origin (the Go page server), the key
// server's URL and the checks, each a page of www/ with its parameters
// (media URLs, tokens, KIDs) and what must happen ("play" or "refuse").
// For every check this opens a fresh page in Debian's Chromium through
// playwright-core, calls the page's window.runCheck(params, expect,
// timeoutMs), watches the key server's answers on the wire, and prints one
// human line on stderr and one JSON line on stdout:
//
//   {"name":"hls.js/header-token","ok":true,"detail":"...","diag":{...}}
//
// diag carries the evidence on failure: the page's console errors, the
// player's error objects, the key server exchanges (tokens redacted).
// Exit status: 0 every check passed, 1 a check failed, 2 the run broke.
import fs from 'node:fs';
import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const redact = (s) => String(s).replace(/(token=|Bearer )[A-Za-z0-9_\-.%]+/g, '$1REDACTED');

function report(r) {
  process.stderr.write(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name.padEnd(40)} ${r.detail}\n`);
  process.stdout.write(JSON.stringify(r) + '\n');
}

function timeout(ms, what) {
  let timer;
  const p = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
  });
  p.cancel = () => clearTimeout(timer);
  return p;
}

// summary of the key server exchanges: "200 x2" or "401, 401".
function statusSummary(exchanges) {
  const counts = new Map();
  for (const x of exchanges) {
    const k = x.status ? String(x.status) : `failed (${x.failure})`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => (n > 1 ? `${k} x${n}` : k)).join(', ') || 'none';
}

// judgeWire checks what the key server answered the page: the expected
// status, CORS for the page origin with credentials, and the token
// transport the check asked for. It returns a list of problems.
function judgeWire(cfg, check, wire) {
  const problems = [];
  // A request aborted by the player's teardown (after the check decided)
  // says nothing; a request that failed otherwise (CORS, connection) does.
  const calls = wire.filter((x) => x.method !== 'OPTIONS' && x.path.startsWith(check.keyPath) && x.failure !== 'net::ERR_ABORTED');
  if (calls.length === 0) {
    problems.push(`no ${check.keyPath} request reached the key server`);
    return problems;
  }
  if (check.expect === 'play') {
    if (calls.some((x) => x.status !== 200)) problems.push(`key server answered ${statusSummary(calls)}, want only 200`);
    const paths = new Set(calls.filter((x) => x.status === 200).map((x) => x.path));
    if (check.minKeyPaths && paths.size < check.minKeyPaths) problems.push(`the page fetched ${paths.size} different keys, want ${check.minKeyPaths} (a key rotation)`);
  } else {
    if (calls.some((x) => x.status === 200)) problems.push(`key server answered 200 to a bad token (${statusSummary(calls)})`);
    if (!calls.some((x) => x.status === check.keyStatus)) problems.push(`key server answered ${statusSummary(calls)}, want ${check.keyStatus}`);
  }
  for (const x of calls) {
    if (!x.status) continue;
    if (x.acao !== cfg.pageOrigin || x.acac !== 'true') {
      problems.push(`CORS: ${x.status} answer with Access-Control-Allow-Origin ${x.acao} and -Credentials ${x.acac}`);
      break;
    }
  }
  const headerToken = check.params.headerToken || check.params.token;
  for (const x of calls.filter((c) => c.status)) {
    if (headerToken && !x.auth) problems.push(`${x.method} ${x.path} carried no Authorization header`);
    if (!headerToken && !x.tokenInQuery) problems.push(`${x.method} ${x.path} carried no token in the query`);
    if (!headerToken && x.auth) problems.push(`${x.method} ${x.path} carried an Authorization header in query-token mode`);
  }
  if (wire.some((x) => x.pageOriginAuth)) problems.push('an Authorization header went to the page origin (media requests must not carry the token)');
  return [...new Set(problems)];
}

async function runCheck(ctx, cfg, check) {
  const page = await ctx.newPage();
  const consoleLines = [];
  const wire = [];
  const pending = [];
  const keyOrigin = new URL(cfg.keyServer).origin;
  const pageOrigin = new URL(cfg.pageOrigin).origin;
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') consoleLines.push(`${m.type()}: ${redact(m.text())}`);
  });
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${redact(e.message)}`));
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (u.origin !== pageOrigin) return;
    pending.push(req.allHeaders().then((h) => {
      if (h.authorization) wire.push({ method: req.method(), path: u.pathname, pageOriginAuth: true });
    }).catch(() => {}));
  });
  page.on('response', (resp) => {
    const u = new URL(resp.url());
    if (u.origin !== keyOrigin) return;
    const req = resp.request();
    pending.push(Promise.all([req.allHeaders(), resp.allHeaders()]).then(([rq, rs]) => {
      wire.push({
        method: req.method(), path: u.pathname, status: resp.status(), tokenInQuery: u.searchParams.has('token'),
        auth: Boolean(rq.authorization), acao: rs['access-control-allow-origin'] ?? null,
        acac: rs['access-control-allow-credentials'] ?? null,
      });
    }).catch(() => {}));
  });
  page.on('requestfailed', (req) => {
    const u = new URL(req.url());
    if (u.origin !== keyOrigin) return;
    wire.push({ method: req.method(), path: u.pathname, status: 0, failure: req.failure()?.errorText ?? 'failed' });
  });

  const started = Date.now();
  let res;
  try {
    await page.goto(`${cfg.pageOrigin}/${check.page}`, { timeout: 10000 });
    const limit = timeout(cfg.checkTimeoutMs + 5000, `${check.page} runCheck`);
    try {
      res = await Promise.race([
        page.evaluate(([p, expect, ms]) => window.runCheck(p, expect, ms), [check.params, check.expect, cfg.checkTimeoutMs]),
        limit,
      ]);
    } finally {
      limit.cancel();
    }
  } catch (e) {
    res = { ok: false, detail: redact(e.message.split('\n')[0]) };
  }
  await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 1000))]);
  await page.close().catch(() => {});

  const problems = res.ok ? judgeWire(cfg, check, wire) : [];
  const calls = wire.filter((x) => x.method !== 'OPTIONS' && x.path.startsWith(check.keyPath));
  const ok = Boolean(res.ok) && problems.length === 0;
  let detail = `${res.detail}; ${check.keyPath.replace(/\/$/, '')} ${statusSummary(calls)}`;
  if (res.ok && problems.length) detail = `${problems.join('; ')} (page: ${res.detail})`;
  return {
    name: check.name,
    ok,
    detail: redact(detail),
    diag: ok ? undefined : JSON.parse(redact(JSON.stringify({
      page: check.page, expect: check.expect, seconds: (Date.now() - started) / 1000,
      result: res, keyServer: wire, console: consoleLines.slice(-30),
    }))),
  };
}

async function main() {
  const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const ctx = await chromium.launchPersistentContext(cfg.userDataDir, {
    executablePath: cfg.chromium, headless: true, args: [...CHROMIUM_ARGS, ...(cfg.chromiumArgs ?? [])], timeout: 30000,
  });
  let failed = false;
  try {
    for (const check of cfg.checks) {
      const r = await runCheck(ctx, cfg, check);
      if (!r.ok) failed = true;
      report(r);
    }
  } finally {
    await ctx.close();
  }
  return failed ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  process.stderr.write(`run.mjs: ${redact(e.stack ?? e)}\n`);
  process.exit(2);
});
