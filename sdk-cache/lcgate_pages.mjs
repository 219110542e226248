
import LlamaCloud from '@llamaindex/llama-cloud';

const [, , baseURL, apiKey, route, page, extra] = process.argv;
const client = new LlamaCloud({ baseURL, apiKey, maxRetries: 0, timeout: 10000 });
const params = JSON.parse(extra || '{}');
const list = route === 'v1'
  ? client.beta.batch.list({ limit: Number(page), ...params })
  : client.batches.list({ page_size: Number(page), ...params });
const pages = [];
const ids = [];
for await (const p of (await list).iterPages()) {
  const h = p.response.headers;
  const items = p.getPaginatedItems();
  pages.push({ url: p.response.url, status: p.response.status, n: items.length,
               x_cache: h.get('x-cache'), cache_status: h.get('cache-status') });
  for (const it of items) ids.push(it.id);
}
console.log(JSON.stringify({ pages, ids }));
