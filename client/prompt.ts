// Reading what the user types: a line on a terminal with the echo off (passphrases, mnemonics), or the next
// line of a piped stdin. Never waits silently: a terminal always gets a prompt, and an ended input is an error
// the caller can explain, not an unsettled promise.

import { StringDecoder } from "node:string_decoder";

/** Ctrl-C at a prompt. */
export class PromptCancelled extends Error {
  override name = "PromptCancelled";
  constructor() {
    super("cancelled");
  }
}

/** Ctrl-D on an empty line, or the input ended before a line. */
export class PromptEnded extends Error {
  override name = "PromptEnded";
  constructor() {
    super("input ended");
  }
}

/** What the terminal reader needs of stdin (a tty.ReadStream, or a fake one in tests). */
export interface TerminalInput {
  isRaw?: boolean;
  setRawMode?: (raw: boolean) => unknown;
  on(event: "data", fn: (chunk: Buffer | string) => void): unknown;
  on(event: "end" | "close", fn: () => void): unknown;
  off(event: "data", fn: (chunk: Buffer | string) => void): unknown;
  off(event: "end" | "close", fn: () => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

/**
 * Reads one line from a terminal in raw mode: the prompt on `output`, the typed characters echoed only when
 * `echo`. Enter ends the line; Backspace deletes a character, Ctrl-U the line; Ctrl-C rejects with
 * PromptCancelled, Ctrl-D on an empty line with PromptEnded; escape sequences (arrows, bracketed paste markers)
 * and other control characters are dropped. The terminal's mode is restored whatever happens.
 */
export function readTerminalLine(
  input: TerminalInput,
  output: { write: (s: string) => unknown },
  prompt: string,
  opts: { echo?: boolean } = {},
): Promise<string> {
  const echo = opts.echo ?? false;
  return new Promise<string>((resolve, reject) => {
    const chars: string[] = [];
    // A character split across two reads is decoded whole.
    const decoder = new StringDecoder("utf8");
    // 0: text, 1: after ESC, 2: inside a CSI/SS3 sequence (until its final byte).
    let esc = 0;
    const wasRaw = Boolean(input.isRaw);
    const done = (err?: Error) => {
      input.off("data", onData);
      input.off("end", onEnd);
      input.off("close", onEnd);
      input.setRawMode?.(wasRaw);
      input.pause();
      output.write("\n");
      if (err) reject(err);
      else resolve(chars.join(""));
    };
    const onEnd = () => done(chars.length ? undefined : new PromptEnded());
    const onData = (chunk: Buffer | string) => {
      for (const ch of typeof chunk === "string" ? chunk : decoder.write(chunk)) {
        if (esc === 1) {
          esc = ch === "[" || ch === "O" ? 2 : 0;
          continue;
        }
        if (esc === 2) {
          if (ch >= "@" && ch <= "~") esc = 0;
          continue;
        }
        switch (ch) {
          case "\r":
          case "\n":
            return done();
          case "\u0003":
            return done(new PromptCancelled());
          case "\u0004":
            if (chars.length === 0) return done(new PromptEnded());
            continue;
          case "\u007f":
          case "\b":
            if (chars.length > 0) {
              chars.pop();
              if (echo) output.write("\b \b");
            }
            continue;
          case "\u0015":
            if (echo) output.write("\b \b".repeat(chars.length));
            chars.length = 0;
            continue;
          case "\u001b":
            esc = 1;
            continue;
          default:
            if (ch < " ") continue;
            chars.push(ch);
            if (echo) output.write(ch);
        }
      }
    };
    // Raw mode before the prompt: a user who types as soon as it shows is never echoed by the terminal.
    input.setRawMode?.(true);
    output.write(prompt);
    input.on("data", onData);
    input.on("end", onEnd);
    input.on("close", onEnd);
    input.resume();
  });
}

/** What the line reader needs of a piped stdin. */
export interface LineInput {
  on(event: "data", fn: (chunk: Buffer | string) => void): unknown;
  on(event: "end" | "close", fn: () => void): unknown;
  on(event: "error", fn: (err: Error) => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

/**
 * The lines of a stream, one per call, without waiting for the stream to end: resolves as soon as a line is
 * complete, with undefined once the input has ended and nothing is left. A trailing "\r" is dropped.
 */
export function lineReader(input: LineInput): () => Promise<string | undefined> {
  let buffered = "";
  let ended = false;
  const decoder = new StringDecoder("utf8");
  let waiting: (() => void) | undefined;
  const wake = () => {
    const w = waiting;
    waiting = undefined;
    w?.();
  };
  let attached = false;
  const attach = () => {
    if (attached) return;
    attached = true;
    input.on("data", (chunk) => {
      buffered += typeof chunk === "string" ? chunk : decoder.write(chunk);
      if (buffered.includes("\n")) input.pause();
      wake();
    });
    const end = () => {
      ended = true;
      wake();
    };
    input.on("end", end);
    input.on("close", end);
    input.on("error", end);
  };
  return async () => {
    attach();
    for (;;) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        return line.replace(/\r$/, "");
      }
      if (ended) {
        if (!buffered) return undefined;
        const line = buffered;
        buffered = "";
        return line.replace(/\r$/, "");
      }
      const more = new Promise<void>((resolve) => {
        waiting = resolve;
      });
      input.resume();
      await more;
    }
  };
}
