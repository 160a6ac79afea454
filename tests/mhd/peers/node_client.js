// SPDX-License-Identifier: MIT
// A peer nobody here wrote the HTTP stack of: Node's http client, aborted
// through an AbortSignal after the number of milliseconds given. Exits 0
// when the request was aborted (AbortError), 1 otherwise.
//
//   node node_client.js URL MILLISECONDS
'use strict';
const http = require('http');

const [url, ms] = process.argv.slice(2);
if (!url || !ms) {
  console.error('usage: node node_client.js URL MILLISECONDS');
  process.exit(2);
}
const controller = new AbortController();
const req = http.get(url, { signal: controller.signal }, (res) => {
  console.log('node peer: got a response, expected an aborted request:', res.statusCode);
  process.exit(1);
});
req.on('error', (err) => {
  if (err.name === 'AbortError') {
    console.log('node peer: request aborted by its signal');
    process.exit(0);
  }
  console.log('node peer: unexpected error:', err.message);
  process.exit(1);
});
setTimeout(() => controller.abort(), Number(ms));
