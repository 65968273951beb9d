#!/usr/bin/env node
// commons-front-door: a TCP front door over scale-out coordinator nodes, for one machine
// (`npm start -- --nodes 3` runs it). Each connection goes to the next node in turn, skipping
// one that refuses; in production a load balancer does this job (docs/ARCHITECTURE.md).
//   commons-front-door --port 4000 --node 127.0.0.1:4101 --node 127.0.0.1:4102 ...
import { parseArgs } from 'node:util';
import { startFrontDoor } from '../src/cluster/front-door.ts';

const USAGE = 'usage: commons-front-door --port N --node HOST:PORT [--node HOST:PORT ...]';

function fail(message: string): never {
  console.error(`commons-front-door: ${message}\n${USAGE}`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: { port: { type: 'string' }, node: { type: 'string', multiple: true } },
    strict: true,
  }));
} catch (error) {
  fail((error as Error).message);
}
const port = Number(values.port ?? '0');
if (!Number.isInteger(port) || port < 0 || port > 65_535)
  fail(`--port must be a port number, got ${values.port}`);
const nodes = (values.node ?? []).map((spec) => {
  const match = /^([^:]+):(\d{1,5})$/.exec(spec);
  if (!match) fail(`--node must be HOST:PORT, got ${spec}`);
  return { host: match[1]!, port: Number(match[2]) };
});
if (nodes.length === 0) fail('name at least one --node');
const door = await startFrontDoor(nodes, port);
console.log(JSON.stringify({ msg: 'front door listening', url: door.url, nodes: values.node }));
const stop = () => void door.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
