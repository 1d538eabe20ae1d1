#!/usr/bin/env node
// Drive a vgi-rpc conformance worker with the TypeScript client @query-farm/vgi-rpc.
//
//   node drive.mjs --transport http --url http://127.0.0.1:PORT [--prefix /vgi]
//   node drive.mjs --transport pipe --cmd "python conformance/worker.py --describe"
//   node drive.mjs --transport pipe -- python conformance/worker.py --describe
//   node drive.mjs --transport unix --path /tmp/worker.sock
//   node drive.mjs --transport tcp --host 127.0.0.1 --port PORT
//   node drive.mjs --transport subprocess --cmd "..."   (the client's Bun-only spawner)
//
// The client finds the service by reflection (vgi_rpc.Reflection.v1: list_protocols,
// then describe the first protocol not starting with "vgi_rpc."), then calls it.
// Prints one JSON line per check, {"check", "ok", "detail"}, and exits 1 if any
// check failed (2 on bad usage). The package is a test peer: nothing of it is copied here.

import { spawn } from "node:child_process";
import { connect as netConnect } from "node:net";
import { parseArgs } from "node:util";

import { RpcError, httpConnect, pipeConnect, subprocessConnect, tcpConnect } from "@query-farm/vgi-rpc";

const CLIENT = "@query-farm/vgi-rpc@0.25.4";
const CHECK_TIMEOUT_MS = Number(process.env.VGI_TS_CHECK_TIMEOUT_MS ?? 30000);
const TRANSPORTS = ["http", "pipe", "unix", "tcp", "subprocess"];

function usage(message) {
  process.stderr.write(`drive.mjs: ${message}\n`);
  process.stderr.write(
    "usage: node drive.mjs --transport http|pipe|unix|tcp|subprocess " +
      "[--url URL --prefix P | --cmd CMD | -- ARGV... | --path PATH | --host H --port N] [--trace]\n",
  );
  process.exit(2);
}

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    transport: { type: "string" },
    url: { type: "string" },
    prefix: { type: "string", default: "/vgi" },
    cmd: { type: "string" },
    path: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    trace: { type: "boolean", default: false },
  },
});
if (!TRANSPORTS.includes(opts.transport)) usage(`--transport must be one of ${TRANSPORTS.join(", ")}`);

let failures = 0;
function report(check, ok, detail) {
  if (!ok) failures += 1;
  process.stdout.write(`${JSON.stringify({ check, ok, detail }, jsonSafe)}\n`);
}

function jsonSafe(_key, value) {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return `<${value.length} bytes>`;
  return value;
}

function trace(line) {
  if (opts.trace) process.stderr.write(`[trace] ${line}\n`);
}

function describeError(err) {
  if (err instanceof RpcError) {
    return { error: "RpcError", errorType: err.errorType, errorMessage: err.errorMessage };
  }
  if (err instanceof Error) return { error: err.name, message: err.message };
  return { error: String(err) };
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms: ${what}`)), CHECK_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function commandArgv() {
  if (positionals.length > 0) return positionals;
  if (opts.cmd) return opts.cmd.split(/\s+/).filter(Boolean);
  usage(`--transport ${opts.transport} needs --cmd CMD or -- ARGV...`);
}

// ---------------------------------------------------------------------------
// Transports. Each opener returns {client, close}; the client is the package's RpcClient.
// ---------------------------------------------------------------------------

function tracingFetch(inner) {
  return async (input, init) => {
    const url = typeof input === "string" ? input : input.url;
    const method = init?.method ?? (typeof input === "string" ? "GET" : input.method);
    const headers = Object.fromEntries(new Headers(init?.headers ?? {}).entries());
    trace(`--> ${method} ${url} ${JSON.stringify(headers)}`);
    const response = await inner(input, init);
    trace(`<-- ${response.status} ${url} ${JSON.stringify(Object.fromEntries(response.headers.entries()))}`);
    return response;
  };
}

function openHttp() {
  if (!opts.url) usage("--transport http needs --url http://HOST:PORT");
  const options = { prefix: opts.prefix };
  if (opts.trace) options.fetch = tracingFetch(globalThis.fetch.bind(globalThis));
  const client = httpConnect(opts.url, options);
  return { client, close: async () => client.close(), how: `httpConnect(${opts.url}, {prefix: ${opts.prefix}})` };
}

function tracingWritable(write) {
  return (data) => {
    trace(`--> ${data.length} bytes`);
    write(data);
  };
}

function openPipe() {
  // The package's raw-pipe client (pipeConnect) over a child started by Node. Its own
  // spawner, subprocessConnect, is Bun-only (Bun.spawn); see --transport subprocess.
  const argv = commandArgv();
  const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "inherit"] });
  child.stdin.on("error", () => {});
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const write = tracingWritable((data) => child.stdin.write(data));
  const client = pipeConnect(child.stdout, { write, end: () => child.stdin.end() });
  const close = async () => {
    client.close(); // ends the child's stdin: the worker exits on EOF
    const timer = setTimeout(() => child.kill("SIGTERM"), 5000);
    await exited;
    clearTimeout(timer);
  };
  return { client, close, how: `pipeConnect over the stdin/stdout of ${JSON.stringify(argv)}` };
}

function openSocket(socket, how) {
  socket.setNoDelay?.(true);
  socket.on("error", (err) => trace(`socket error: ${err.message}`));
  const closed = new Promise((resolve) => socket.once("close", resolve));
  const write = tracingWritable((data) => socket.write(data));
  const client = pipeConnect(socket, { write, end: () => socket.end() });
  const close = async () => {
    client.close();
    socket.destroy();
    await closed;
  };
  return { client, close, how };
}

function openUnix() {
  // 0.25.4 ships no unix-socket client (its transports: HTTP, Iroh, subprocess, raw pipe,
  // raw TCP). Its raw-pipe client takes any byte stream, so it is driven over a
  // node:net unix socket, exactly as its own tcpConnect drives it over a TCP socket.
  if (!opts.path) usage("--transport unix needs --path PATH");
  return openSocket(netConnect({ path: opts.path }), `pipeConnect over a node:net unix socket ${opts.path}`);
}

function openTcp() {
  if (!opts.port) usage("--transport tcp needs --host HOST --port PORT");
  const port = Number(opts.port);
  if (!opts.trace) {
    const client = tcpConnect(opts.host, port);
    return { client, close: async () => client.close(), how: `tcpConnect(${opts.host}, ${port})` };
  }
  // With --trace: the same wiring as tcpConnect, with the bytes counted.
  return openSocket(netConnect({ host: opts.host, port }), `pipeConnect over node:net TCP ${opts.host}:${port}`);
}

function openSubprocess() {
  const argv = commandArgv();
  const client = subprocessConnect(argv); // throws on Node: it calls Bun.spawn
  return { client, close: async () => client.close(), how: `subprocessConnect(${JSON.stringify(argv)})` };
}

const OPENERS = { http: openHttp, pipe: openPipe, unix: openUnix, tcp: openTcp, subprocess: openSubprocess };

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

function same(actual, expected) {
  if (typeof actual === "bigint" || typeof expected === "bigint") {
    try {
      return BigInt(actual) === BigInt(expected);
    } catch {
      return false;
    }
  }
  return actual === expected;
}

function closeTo(actual, expected) {
  return typeof actual === "number" && Math.abs(actual - expected) < 1e-9;
}

function rowsOf(batches) {
  return batches.flat();
}

const REQUIRED = ["echo_string", "echo_int", "echo_float", "add_floats", "concatenate", "raise_value_error", "produce_n", "exchange_scale"];

const CHECKS = [
  {
    name: "reflection",
    async run(client) {
      const desc = await client.describe();
      const names = new Set(desc.methods.map((m) => m.name));
      const missing = REQUIRED.filter((name) => !names.has(name));
      return {
        ok: Boolean(desc.protocolName) && missing.length === 0,
        detail: {
          protocol: desc.protocolName,
          version: desc.protocolVersion,
          methods: desc.methods.length,
          hosted: desc.hostedProtocols,
          hash: desc.protocolHash,
          missing,
        },
      };
    },
  },
  unary("echo_string", { value: "héllo, wörld ✓" }, (r) => r?.result === "héllo, wörld ✓"),
  unary("echo_int", { value: 1234567890123 }, (r) => same(r?.result, 1234567890123)),
  unary("echo_int.negative", { value: -7 }, (r) => same(r?.result, -7), "echo_int"),
  unary("echo_float", { value: 3.25 }, (r) => closeTo(r?.result, 3.25)),
  unary("echo_bool", { value: true }, (r) => r?.result === true),
  unary("add_floats", { a: 1.5, b: 2.25 }, (r) => closeTo(r?.result, 3.75)),
  unary(
    "concatenate",
    { prefix: "left", suffix: "right", separator: "+" },
    (r) => r?.result === "left+right",
  ),
  {
    // An omitted parameter that has a default. Reflection.v1 carries no parameter
    // defaults (MethodInfoDesc has none), so 0.25.4 sends the omitted parameter as
    // null; the reference 0.52.2 server refuses that with a TypeError, which must
    // arrive as a remote error and leave the connection usable.
    name: "concatenate.omitted_default",
    async run(client) {
      try {
        const result = await client.call("concatenate", { prefix: "left", suffix: "right" });
        return { ok: false, detail: { expected: "RpcError TypeError naming 'separator' (as 0.52.2)", got: result } };
      } catch (err) {
        const ok = err instanceof RpcError && err.errorType === "TypeError" && err.errorMessage.includes("separator");
        return { ok, detail: describeError(err) };
      }
    },
  },
  unary("concatenate.explicit_default", { prefix: "left", suffix: "right", separator: "-" }, (r) => r?.result === "left-right", "concatenate"),
  {
    name: "raise_value_error",
    async run(client) {
      try {
        const result = await client.call("raise_value_error", { message: "boom from ts" });
        return { ok: false, detail: { expected: "RpcError ValueError", got: result } };
      } catch (err) {
        const ok = err instanceof RpcError && err.errorType === "ValueError" && err.errorMessage.includes("boom from ts");
        return { ok, detail: describeError(err) };
      }
    },
  },
  unary("echo_string.after_error", { value: "still alive" }, (r) => r?.result === "still alive", "echo_string"),
  {
    name: "produce_n",
    async run(client) {
      const session = await client.stream("produce_n", { count: 5 });
      const batches = [];
      try {
        for await (const rows of session) batches.push(rows);
      } finally {
        session.close();
      }
      const rows = rowsOf(batches);
      const ok =
        rows.length === 5 && rows.every((row, i) => same(row.index, i) && same(row.value, i * 10));
      return { ok, detail: { batches: batches.length, rows } };
    },
  },
  {
    name: "exchange_scale",
    async run(client) {
      const session = await client.stream("exchange_scale", { factor: 2.5 });
      const turns = [];
      const inputs = [[1.0], [2.0, -4.0], [0.5, 10.0, 100.0]];
      try {
        for (const values of inputs) {
          const out = await session.exchange(values.map((value) => ({ value })));
          turns.push(out.map((row) => row.value));
        }
      } finally {
        session.close();
      }
      const ok =
        turns.length === inputs.length &&
        inputs.every((values, t) => turns[t].length === values.length && values.every((v, i) => closeTo(turns[t][i], v * 2.5)));
      return { ok, detail: { turns } };
    },
  },
  {
    // A stream whose init fails: the error must reach the caller, and (second
    // generation) the client's empty input stream must be drained by the server.
    name: "produce_error_on_init",
    async run(client) {
      let session;
      try {
        session = await client.stream("produce_error_on_init", {});
        const rows = [];
        for await (const batch of session) rows.push(...batch);
        return { ok: false, detail: { expected: "RpcError from the stream's init", got: rows } };
      } catch (err) {
        const ok = err instanceof RpcError && err.errorType === "RuntimeError" && err.errorMessage.includes("intentional init error");
        return { ok, detail: describeError(err) };
      } finally {
        session?.close();
      }
    },
  },
  unary("echo_string.after_streams", { value: "done" }, (r) => r?.result === "done", "echo_string"),
];

function unary(name, params, accept, method = name) {
  return {
    name,
    async run(client) {
      const result = await client.call(method, params);
      return { ok: Boolean(accept(result)), detail: { params, result } };
    },
  };
}

async function main() {
  const transport = opts.transport;
  let conn;
  try {
    conn = OPENERS[transport]();
  } catch (err) {
    const unsupported = transport === "subprocess" && typeof globalThis.Bun === "undefined";
    report(`${transport}.connect`, false, unsupported ? { unsupported: "unsupported by the client on Node (subprocessConnect calls Bun.spawn)", ...describeError(err) } : describeError(err));
    return;
  }
  report(`${transport}.connect`, true, { client: CLIENT, node: process.version, how: conn.how });
  for (const check of CHECKS) {
    let outcome;
    try {
      outcome = await withTimeout(check.run(conn.client), check.name);
    } catch (err) {
      outcome = { ok: false, detail: describeError(err) };
    }
    report(`${transport}.${check.name}`, outcome.ok, outcome.detail);
    if (!outcome.ok) {
      // A failed call may leave a byte-stream connection mid-response: start afresh.
      await withTimeout(conn.close(), "close").catch(() => {});
      try {
        conn = OPENERS[transport]();
      } catch (err) {
        report(`${transport}.reconnect`, false, describeError(err));
        return;
      }
    }
  }
  await withTimeout(conn.close(), "close").catch((err) => report(`${transport}.close`, false, describeError(err)));
}

await main();
process.exitCode = failures === 0 ? 0 : 1;
