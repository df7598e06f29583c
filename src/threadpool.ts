/**
 * Imported first by each entry point, before anything touches libuv's thread pool (its size
 * is read once, at first use). 16 threads: up to 12 blocking libvirt binding calls (see
 * adapters/libvirt/call-limit.ts) and 4 always free for file I/O. An explicit
 * UV_THREADPOOL_SIZE in the environment wins.
 */
if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '16';
export {};
