/**
 * The tus project's reference server (@tus/server with @tus/file-store), a peer of bench/upload.py.
 *
 * It serves tus 1.0 (core, creation, termination, expiration as the file store has them) at the
 * path the station uploads to, /api/v1/uploads (examkiosk_wire.api.API_PREFIX + "/uploads"), so
 * the station's tus client talks to it exactly as to our edge. It is only the protocol, not the
 * edge: no station auth (the Authorization header is ignored), no database, no verification.
 * In particular @tus/server does not implement the checksum extension: the client's
 * Upload-Checksum header (sha256 of each chunk) is accepted and ignored, and the whole-file
 * SHA-256 the station declares in Upload-Metadata is never computed. @tus/file-store does not
 * fsync either. Our edge does all of that on every chunk, which the figures must be read with.
 *
 * Usage: node server.js [PORT [DIR [MAX_SIZE]]]   (or the environment variables PORT, DIR,
 *        MAX_SIZE; argv wins). PORT: TCP port on HOST (env, default 127.0.0.1); DIR: where
 *        the uploads are stored; MAX_SIZE: the largest upload in bytes (0: no limit).
 * Prints "listening on HOST:PORT" on stderr once it accepts connections; SIGTERM/SIGINT stop it.
 */
import process from 'node:process';

import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';

const [argPort, argDir, argMaxSize] = process.argv.slice(2);
const port = Number.parseInt(argPort ?? process.env.PORT ?? '1080', 10);
const directory = argDir ?? process.env.DIR;
const maxSize = Number.parseInt(argMaxSize ?? process.env.MAX_SIZE ?? '0', 10);
const host = process.env.HOST ?? '127.0.0.1';

if (!Number.isInteger(port) || port <= 0 || port > 65535 || !directory || !Number.isInteger(maxSize) || maxSize < 0) {
  console.error('usage: node server.js PORT DIR [MAX_SIZE]   (or env PORT, DIR, MAX_SIZE)');
  process.exit(2);
}

const tus = new Server({
  path: '/api/v1/uploads',
  datastore: new FileStore({ directory }),
  maxSize,
  relativeLocation: true, // Location: /api/v1/uploads/<id>, as our edge answers
});

const http = tus.listen({ host, port }, () => {
  console.error(`listening on ${host}:${port} (tus at /api/v1/uploads, files in ${directory})`);
});
http.keepAliveTimeout = 60_000; // the client keeps one connection per uploader, as with gunicorn

function stop(signal) {
  console.error(`${signal}: stopping`);
  http.close(() => process.exit(0));
  http.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
