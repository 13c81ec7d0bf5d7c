import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionStats {
  /** Open connections now. */
  open: number;
  /** The cap. */
  max: number;
  /** Idle connections closed to make room for new ones. */
  evicted: number;
  /** New connections closed at once because every open one had a request in progress. */
  refused: number;
}

/**
 * Caps a Node HTTP server's open connections at `max`, so a flood of idle
 * sockets cannot exhaust the process's file descriptors. Unlike
 * `server.maxConnections` (which drops every new connection once the cap is
 * reached, so a client holding `max` idle sockets locks everyone out, health
 * checks included), a new connection over the cap first closes the connection
 * that has been idle longest with no request in progress: one that has not
 * finished sending its request headers, or a keep-alive connection between
 * requests. Only when every connection is busy with a request is the new one
 * refused. Requests in progress are bounded by the request timeout and the
 * job queue, so busy connections cannot be held for long.
 */
export function capConnections(
  server: Server,
  max: number,
): { stats(): ConnectionStats; idle(socket: Socket): void; busy(socket: Socket): void } {
  // Insertion order = last activity: the first idle entry is the longest idle connection.
  const busy = new Map<Socket, boolean>();
  let evicted = 0;
  let refused = 0;
  server.on('connection', (socket: Socket) => {
    busy.set(socket, false);
    socket.once('close', () => busy.delete(socket));
    if (busy.size <= max) return;
    for (const [s, b] of busy) {
      if (!b && s !== socket) {
        evicted++;
        busy.delete(s);
        s.destroy();
        return;
      }
    }
    refused++;
    busy.delete(socket);
    socket.destroy();
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    if (!busy.has(socket)) return;
    busy.set(socket, true);
    res.once('close', () => {
      // Re-inserted at the end: eviction picks the least recently active idle connection.
      if (busy.delete(socket)) busy.set(socket, false);
    });
  });
  return {
    stats: () => ({ open: busy.size, max, evicted, refused }),
    /** Marks a connection whose request does no work yet (it waits for admission) as evictable. */
    idle: (socket: Socket) => {
      if (busy.has(socket)) busy.set(socket, false);
    },
    /** Marks it busy again (admitted). */
    busy: (socket: Socket) => {
      if (busy.has(socket)) busy.set(socket, true);
    },
  };
}
