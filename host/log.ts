// Structured JSON logs (pino). Callers log public data only: never a share, nonce, ciphertext key or token.
import { type Logger, pino } from "pino";

export type { Logger };

export function createLogger(level: string, file = ""): Logger {
  const destination = file ? pino.destination({ dest: file, mkdir: true, sync: false }) : pino.destination(1);
  return pino(
    {
      level,
      base: { service: "se-host" },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Defence in depth: fields with these names are never written, whatever a caller passes.
      redact: {
        paths: ["secret", "share", "nonce", "token", "*.secret", "*.share", "*.nonce", "*.token", "password"],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
