// One attested channel per peer (channel.ts), over envelopes the host carries (enclave.proto Peers). A member id is
// the hex of the member's Ed25519 instance key, so a channel admits a peer only under the id the layer above
// (raft.ts) knows it by: the host cannot make one member speak for another.
//
// Handshakes start on demand: a message for a peer without a channel starts one (at most one per peer every
// RETRY_MS) and is dropped, since Raft retransmits. When both sides start at once, the lower id's handshake goes on
// and the higher id answers it. A sealed frame for a channel we do not have (the peer finished a handshake whose
// last message the host dropped) starts a new one; the new channel replaces the old, whose keys are zeroed.
import { hex } from "../core.ts";
import {
  type Channel,
  type ChannelConfig,
  completeInitiator,
  completeResponder,
  FRAME,
  type InitiatorHandshake,
  initiate,
  open,
  type ResponderHandshake,
  replaceChannel,
  respond,
  seal,
  wipeChannel,
  wipeHandshake,
} from "./channel.ts";

/** How long a handshake may stay unanswered before another is started. */
export const RETRY_MS = 500;

interface Peer {
  channel?: Channel;
  initiator?: { state: InitiatorHandshake; at: number };
  responder?: ResponderHandshake;
  /** Whether our reply or finish is being made (attestation is asynchronous): frames meanwhile are dropped. */
  busy: boolean;
}

export interface LinksDeps {
  /** Our member id: hex of our instance key. */
  self: string;
  config: ChannelConfig;
  /** Hands an envelope to the host. */
  send: (to: string, payload: Uint8Array) => void;
  /** A message a peer sealed to us, opened. */
  deliver: (from: string, plaintext: Buffer) => void;
  now: () => number;
  /** Refusals worth an operator's eye (never with key material: codes and peer ids only). */
  warn: (msg: string, extra: Record<string, string>) => void;
}

export class PeerLinks {
  private readonly peers = new Map<string, Peer>();

  constructor(private readonly d: LinksDeps) {}

  private peer(id: string): Peer {
    let p = this.peers.get(id);
    if (!p) {
      p = { busy: false };
      this.peers.set(id, p);
    }
    return p;
  }

  /** Whether a channel to `id` is open. */
  connected(id: string): boolean {
    return this.peers.get(id)?.channel !== undefined;
  }

  /** Starts a handshake to `id` unless a channel is open or one is under way. */
  ensure(id: string): void {
    const p = this.peer(id);
    if (!p.channel) this.start(id, p);
  }

  /**
   * Seals `plaintext` to `to`, or starts a handshake and drops it (the caller retransmits). Takes the buffer: it
   * may carry shares (log entries, a snapshot), so it is zeroed once sealed or dropped.
   */
  send(to: string, plaintext: Uint8Array): boolean {
    const p = this.peer(to);
    try {
      if (p.channel) {
        this.d.send(to, seal(p.channel, plaintext));
        return true;
      }
      this.start(to, p);
      return false;
    } finally {
      plaintext.fill(0);
    }
  }

  private start(to: string, p: Peer): void {
    const now = this.d.now();
    if (p.busy || (p.initiator && now - p.initiator.at < RETRY_MS)) return;
    if (p.initiator) wipeHandshake(p.initiator.state);
    const { state, hello } = initiate(this.d.config);
    p.initiator = { state, at: now };
    this.d.send(to, hello);
  }

  /** An envelope from `from`. Never throws: a frame that fails is dropped and, if it says why, reported. */
  async receive(from: string, payload: Uint8Array): Promise<void> {
    if (from === this.d.self || payload.length < 2) return;
    const p = this.peer(from);
    try {
      switch (payload[1]) {
        case FRAME.hello:
          return await this.onHello(from, p, payload);
        case FRAME.reply:
          return await this.onReply(from, p, payload);
        case FRAME.finish:
          return this.onFinish(from, p, payload);
        case FRAME.sealed:
          return this.onSealed(from, p, payload);
      }
    } catch (err) {
      const code = (err as { code?: string }).code ?? (err as Error).name;
      this.d.warn("peer frame refused", { peer: from, code });
    }
  }

  private async onHello(from: string, p: Peer, hello: Uint8Array): Promise<void> {
    // Both started: the lower id's handshake goes on.
    if (p.initiator && this.d.self < from) return;
    if (p.busy) return;
    if (p.initiator) wipeHandshake(p.initiator.state);
    p.initiator = undefined;
    p.busy = true;
    try {
      const { state, reply } = await respond(this.d.config, hello);
      if (p.responder) wipeHandshake(p.responder);
      p.responder = state;
      this.d.send(from, reply);
    } finally {
      p.busy = false;
    }
  }

  private async onReply(from: string, p: Peer, reply: Uint8Array): Promise<void> {
    const h = p.initiator;
    if (!h || p.busy) return;
    p.busy = true;
    try {
      const { channel, finish } = await completeInitiator(h.state, reply);
      p.initiator = undefined;
      this.open(from, p, channel);
      this.d.send(from, finish);
    } finally {
      p.busy = false;
    }
  }

  private onFinish(from: string, p: Peer, finish: Uint8Array): void {
    const state = p.responder;
    if (!state) return;
    const channel = completeResponder(state, finish);
    p.responder = undefined;
    this.open(from, p, channel);
  }

  private open(from: string, p: Peer, channel: Channel): void {
    if (hex(channel.peer.instanceKey) !== from) {
      wipeChannel(channel);
      this.d.warn("peer's attested instance key is not the member id it came under", { peer: from });
      return;
    }
    p.channel = replaceChannel(p.channel, channel);
  }

  private onSealed(from: string, p: Peer, frame: Uint8Array): void {
    const id = frame.subarray(2, 18);
    if (!p.channel?.id.equals(id)) {
      this.start(from, p);
      return;
    }
    // The layer above copies what it keeps (raft-codec decodes into buffers of its own): the opened bytes, which
    // may carry shares, are zeroed once it has them.
    const plain = open(p.channel, frame);
    try {
      this.d.deliver(from, plain);
    } finally {
      plain.fill(0);
    }
  }

  /** Drops a peer (removed from the set): its channel's keys are zeroed. */
  forget(id: string): void {
    const p = this.peers.get(id);
    if (!p) return;
    if (p.channel) wipeChannel(p.channel);
    if (p.initiator) wipeHandshake(p.initiator.state);
    if (p.responder) wipeHandshake(p.responder);
    this.peers.delete(id);
  }

  wipeAll(): void {
    for (const id of [...this.peers.keys()]) this.forget(id);
  }
}
