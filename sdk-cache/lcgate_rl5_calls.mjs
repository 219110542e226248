
import LlamaCloud from '@llamaindex/llama-cloud';

const [, , baseURL, apiKey, n, extra] = process.argv;
const t0 = performance.now();
const attempts = [];
const timedFetch = async (url, init) => {
  const a = { start: performance.now() - t0 };
  try {
    const r = await fetch(url, init);
    a.end = performance.now() - t0;
    a.status = r.status;
    a.retry_after = r.headers.get('retry-after');
    a.retry_after_ms = r.headers.get('retry-after-ms');
    attempts.push(a);
    return r;
  } catch (e) {
    a.end = performance.now() - t0;
    a.error = String(e);
    attempts.push(a);
    throw e;
  }
};
const client = new LlamaCloud({ baseURL, apiKey, fetch: timedFetch, timeout: 10000 });
const params = JSON.parse(extra || '{}');
const calls = [];
for (let i = 0; i < Number(n); i++) {
  const c = { start: performance.now() - t0 };
  try {
    const page = await client.beta.batch.list({ limit: 5, ...params });
    c.ok = true;
    c.items = page.getPaginatedItems().length;
  } catch (e) {
    c.ok = false;
    c.error = String(e);
  }
  c.end = performance.now() - t0;
  calls.push(c);
}
console.log(JSON.stringify({ calls, attempts }));
