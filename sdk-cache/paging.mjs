// Pages through one list route with the official SDK and prints the ids it
// got, in order, as JSON. Usage: node paging.mjs BASE_URL API_KEY v1|v2 PAGE [PARAMS_JSON]
import LlamaCloud from '@llamaindex/llama-cloud';

const [, , baseURL, apiKey, route, page, extra] = process.argv;
const client = new LlamaCloud({ baseURL, apiKey, maxRetries: 0, timeout: 20000 });
const params = JSON.parse(extra || '{}');
const ids = [];
let pages = 0;
const list = route === 'v1'
  ? client.beta.batch.list({ limit: Number(page), ...params })
  : client.batches.list({ page_size: Number(page), ...params });
const first = await list;
for await (const p of first.iterPages()) {
  pages += 1;
  for (const item of p.getPaginatedItems()) ids.push(item.id);
}
console.log(JSON.stringify({ pages, ids }));
