// Reads P:events (a Redis stream) with a consumer group: the feed for server-side metrics.
import { commandOptions } from "redis";
import { LedgerClient } from "./client";

/** One stream entry: `event` names the kind; every value is a string, as the worker writes it. */
export interface LedgerEvent {
  /** The stream entry id. */
  streamId: string;
  event: string;
  fields: Record<string, string>;
}

export interface EventConsumerOptions {
  group: string;
  consumer: string;
  /** The partition whose stream to read (N > 1). Default 0. */
  partition?: number;
  /** Where a new group starts: `0` (everything kept, the default) or `$` (only new events). */
  startId?: string;
  count?: number;
  blockMs?: number;
}

/**
 * Delivery is at least once: an event is acknowledged only after the handler returns, so after a
 * crash the consumer's pending events are delivered again (dedupe by the job `id` where needed).
 */
export class EventConsumer {
  readonly key: string;
  private pendingFirst = true;

  constructor(private readonly client: LedgerClient, private readonly options: EventConsumerOptions) {
    this.key = client.key("events", options.partition ?? 0);
  }

  /** XGROUP CREATE ... MKSTREAM, unless the group exists. */
  async ensureGroup(): Promise<void> {
    try {
      await this.client.connection.xGroupCreate(this.key, this.options.group, this.options.startId ?? "0", { MKSTREAM: true });
    } catch (error) {
      if (!String(error).includes("BUSYGROUP")) throw error;
    }
  }

  /** The next events: this consumer's unacknowledged ones first, then new ones (waits up to blockMs). */
  async read(): Promise<LedgerEvent[]> {
    const { group, consumer, count = 100, blockMs = 1000 } = this.options;
    const id = this.pendingFirst ? "0" : ">";
    const streams = await this.client.connection.xReadGroup(commandOptions({ isolated: true }), group, consumer,
      { key: this.key, id }, { COUNT: count, BLOCK: blockMs });
    const messages = streams?.[0]?.messages ?? [];
    if (this.pendingFirst && messages.length === 0) {
      this.pendingFirst = false;
      return this.read();
    }
    return messages.map(({ id: streamId, message }) => ({ streamId, event: message.event, fields: { ...message } }));
  }

  async ack(events: LedgerEvent[]): Promise<void> {
    if (events.length > 0) await this.client.connection.xAck(this.key, this.options.group, events.map((e) => e.streamId));
  }

  /** Reads, hands each batch to `handler`, acknowledges it; until `shouldStop()` says so. */
  async run(handler: (events: LedgerEvent[]) => unknown, shouldStop: () => boolean = () => false): Promise<void> {
    await this.ensureGroup();
    while (!shouldStop()) {
      const events = await this.read();
      if (events.length === 0) continue;
      await handler(events);
      await this.ack(events);
    }
  }
}
