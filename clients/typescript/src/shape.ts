// Reading replies: every field a result exposes is checked here at run time, so that a reply of
// another shape fails with the field's name instead of travelling on as a wrong type.
import { ErrorCode } from "./codes";
import { Reply, ReplyShapeError } from "./errors";

export type Metadata = Record<string, unknown>;

export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * The fields of one JSON object of a reply, read with their types checked. Integers must be safe
 * integers (|n| <= 2^53 - 1): the ledger's are 64-bit, and a JSON number past 2^53 has already lost
 * digits when parsed, so it is refused rather than answered wrong.
 */
export class Fields {
  constructor(readonly value: Record<string, unknown>, private readonly path: string, private readonly text: string) {}

  private name(field: string): string {
    return this.path ? `${this.path}.${field}` : field;
  }

  private fail(field: string, expected: string): never {
    throw new ReplyShapeError(this.name(field), expected, this.text);
  }

  has(field: string): boolean {
    return this.value[field] !== undefined;
  }

  int(field: string): number {
    const v = this.value[field];
    if (typeof v !== "number" || !Number.isSafeInteger(v)) this.fail(field, "an integer within ±(2^53 - 1)");
    return v;
  }

  intOrNull(field: string): number | null {
    return this.value[field] == null ? null : this.int(field);
  }

  optInt(field: string): number | undefined {
    return this.has(field) ? this.int(field) : undefined;
  }

  str(field: string): string {
    const v = this.value[field];
    if (typeof v !== "string") this.fail(field, "a string");
    return v;
  }

  strOrNull(field: string): string | null {
    return this.value[field] == null ? null : this.str(field);
  }

  optStr(field: string): string | undefined {
    return this.has(field) ? this.str(field) : undefined;
  }

  bool(field: string): boolean {
    const v = this.value[field];
    if (typeof v !== "boolean") this.fail(field, "true or false");
    return v;
  }

  optBool(field: string): boolean | undefined {
    return this.has(field) ? this.bool(field) : undefined;
  }

  date(field: string): Date {
    const v = this.value[field];
    const date = typeof v === "string" ? new Date(v) : undefined;
    if (!date || Number.isNaN(date.getTime())) this.fail(field, "an ISO 8601 time");
    return date;
  }

  dateOrNull(field: string): Date | null {
    return this.value[field] == null ? null : this.date(field);
  }

  optDate(field: string): Date | undefined {
    return this.has(field) ? this.date(field) : undefined;
  }

  /** A JSON object kept as it is (metadata), or null. */
  jsonObjectOrNull(field: string): Metadata | null {
    const v = this.value[field];
    if (v == null) return null;
    if (!isObject(v)) this.fail(field, "an object or null");
    return v;
  }

  object(field: string): Fields {
    const v = this.value[field];
    if (!isObject(v)) this.fail(field, "an object");
    return new Fields(v, this.name(field), this.text);
  }

  /** The members of an object whose values are objects, as [key, Fields] pairs. */
  entries(field: string): [string, Fields][] {
    const outer = this.object(field);
    return Object.keys(outer.value).map((key) => [key, outer.object(key)]);
  }

  list(field: string): Fields[] {
    const v = this.value[field];
    if (!Array.isArray(v)) this.fail(field, "an array");
    return v.map((item, index) => {
      if (!isObject(item)) this.fail(`${field}[${index}]`, "an object");
      return new Fields(item, this.name(`${field}[${index}]`), this.text);
    });
  }
}

/** Parses a reply and checks its envelope: `type`, `success`, `id`, `duplicate`, and `error` on a failure. */
export function readReply(text: string): { reply: Reply; fields: Fields } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ReplyShapeError("(reply)", "JSON", text);
  }
  if (!isObject(parsed)) throw new ReplyShapeError("(reply)", "a JSON object", text);
  const fields = new Fields(parsed, "", text);
  const type = fields.str("type");
  const success = fields.bool("success");
  const id = fields.value.id === undefined ? null : fields.strOrNull("id");
  const duplicate = fields.optBool("duplicate");
  let error: { code: ErrorCode; message: string } | undefined;
  if (!success) {
    const e = fields.object("error");
    error = { code: e.str("code"), message: e.str("message") };
  }
  return { reply: { ...parsed, id, type, success, duplicate, error }, fields };
}
