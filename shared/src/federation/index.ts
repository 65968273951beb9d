// The contributor's side of federated training: the Socket.IO client, its decision to join a
// round, the signed chunked upload, the verified base-model download and the local update
// (train, delta, clip, encode). No file system: runs in Node,
// a browser or a worker.
export * from './client.ts';
export * from './admission.ts';
export * from './uploader.ts';
export * from './base-model.ts';
export * from './adapter-version.ts';
export * from './local-update.ts';
export { TypedEmitter } from './typed-emitter.ts';
