// SPDX-License-Identifier: MIT
// A Node http server for the cctx-curl tests: prints "port N", then
// "req PATH" when a request arrives and "closed PATH aborted" (or
// "closed PATH finished") when its response closes: a client that goes
// away before the answer shows as aborted. /hang never answers; /echo
// answers at once. Ends when its stdin closes.
'use strict';
const http = require('http');

const server = http.createServer((req, res) => {
  console.log(`req ${req.url}`);
  res.on('close', () => {
    console.log(`closed ${req.url} ${res.writableFinished ? 'finished' : 'aborted'}`);
  });
  if (req.url !== '/hang') res.end('ok');
});
server.listen(0, '127.0.0.1', () => console.log(`port ${server.address().port}`));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
