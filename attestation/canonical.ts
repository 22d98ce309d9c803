// Canonical CBOR statements: a map with text keys in one fixed order, definite lengths, shortest form. A
// decoder accepts only the exact bytes the encoder would write for the same values, so every statement has
// one encoding and one hash.
import { parsePoint } from "../protocol/encoding.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { type CborValue, decodeCbor, encodeCbor, isMap } from "./cbor.ts";

export type FieldSpec =
  | { key: string; kind: "uint" }
  | { key: string; kind: "text"; values: readonly string[] }
  | { key: string; kind: "bytes"; length: number; nullable?: boolean; point?: boolean };

export type FieldValue = number | string | Uint8Array | null;

export class StatementError extends ProtocolError {
  override name = "StatementError";
}

function checkField(spec: FieldSpec, v: unknown, what: string, code: string): FieldValue {
  const bad = (m: string) => new StatementError(code, `${what}: ${spec.key} ${m}`, "invalid");
  switch (spec.kind) {
    case "uint":
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
        throw bad("must be an unsigned integer");
      return v;
    case "text":
      if (typeof v !== "string" || !spec.values.includes(v)) {
        throw bad(`must be ${spec.values.map((x) => JSON.stringify(x)).join(" or ")}`);
      }
      return v;
    case "bytes":
      if (v === null && spec.nullable) return null;
      if (!(v instanceof Uint8Array) || v.length !== spec.length) {
        throw bad(`must be ${spec.length} bytes${spec.nullable ? " or null" : ""}`);
      }
      if (spec.point) {
        try {
          parsePoint(v, spec.key);
        } catch (e) {
          throw bad(`is not a valid secp256k1 point (${(e as Error).message})`);
        }
      }
      return v;
  }
}

export function encodeStatement(
  spec: readonly FieldSpec[],
  values: Record<string, FieldValue>,
  what: string,
  code: string,
): Uint8Array {
  const extra = Object.keys(values).filter((k) => !spec.some((s) => s.key === k));
  if (extra.length > 0) throw new StatementError(code, `${what}: unknown field ${extra[0]}`, "invalid");
  return encodeCbor(new Map(spec.map((s) => [s.key, checkField(s, values[s.key], what, code) as CborValue])));
}

export function decodeStatement(
  spec: readonly FieldSpec[],
  bytes: Uint8Array,
  what: string,
  code: string,
): Record<string, FieldValue> {
  let v: CborValue;
  try {
    v = decodeCbor(bytes, { canonical: true, maxDepth: 1, maxItems: 16, maxLength: 64 });
  } catch (e) {
    throw new StatementError(code, `${what} is not canonical CBOR: ${(e as Error).message}`, "invalid");
  }
  if (!isMap(v)) throw new StatementError(code, `${what} must be a CBOR map`, "invalid");
  // The type is checked first, so a statement of another kind is refused as such, whatever its fields.
  const typeSpec = spec.find((s) => s.key === "type");
  if (typeSpec && v.has("type")) checkField(typeSpec, v.get("type"), what, code);
  const keys = [...v.keys()];
  const expected = spec.map((s) => s.key);
  if (keys.length !== expected.length || keys.some((k, i) => k !== expected[i])) {
    throw new StatementError(
      code,
      `${what} must have the fields ${expected.join(", ")} in this order`,
      "invalid",
    );
  }
  const out: Record<string, FieldValue> = {};
  for (const s of spec) out[s.key] = checkField(s, v.get(s.key), what, code);
  // Shortest-form heads are enforced by the decoder; this guards against anything else that could differ.
  const again = encodeCbor(new Map(spec.map((s) => [s.key, out[s.key] as CborValue])));
  if (Buffer.compare(again, bytes) !== 0) {
    throw new StatementError(code, `${what} is not in canonical form`, "invalid");
  }
  return out;
}
