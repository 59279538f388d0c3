/**
 * UpdateExpression / ConditionExpression building. Every attribute goes through an
 * expression attribute name (`status`, `index`, `name`, … are reserved words).
 */
import { BugError } from "../../core/errors.js";

export class Expression {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, unknown> = {};
  private valueCount = 0;

  name(attribute: string): string {
    if (!/^[A-Za-z0-9_]+$/.test(attribute))
      throw new BugError(`attribute name ${JSON.stringify(attribute)} is not usable`);
    const placeholder = `#${attribute}`;
    this.names[placeholder] = attribute;
    return placeholder;
  }

  value(value: unknown): string {
    const placeholder = `:v${this.valueCount++}`;
    this.values[placeholder] = value;
    return placeholder;
  }

  /** Names/values in the shape the DocumentClient wants (omitted when empty). */
  params(): {
    ExpressionAttributeNames?: Record<string, string>;
    ExpressionAttributeValues?: Record<string, unknown>;
  } {
    return {
      ...(Object.keys(this.names).length > 0 ? { ExpressionAttributeNames: this.names } : {}),
      ...(Object.keys(this.values).length > 0 ? { ExpressionAttributeValues: this.values } : {}),
    };
  }
}

export interface UpdateParts {
  /** Attribute → stored value; `null` removes it, `undefined` leaves it alone. */
  fields: Record<string, unknown>;
  /** Derived attributes (index keys) to set. */
  set?: Record<string, unknown>;
  /** Derived attributes to remove. */
  remove?: readonly string[];
  /** Field name → encoder for stored form (e.g. JSON text). */
  encoders?: Record<string, (value: unknown) => unknown>;
  /** An attribute every item has, used for a no-op SET when the update is empty (the write still checks the condition). */
  noopAttribute: string;
}

export function updateExpression(expr: Expression, parts: UpdateParts): string {
  const sets: string[] = [];
  const removes: string[] = [];
  for (const [key, value] of Object.entries(parts.fields)) {
    if (value === undefined) continue;
    if (value === null) removes.push(expr.name(key));
    else {
      const encode = parts.encoders?.[key];
      sets.push(`${expr.name(key)} = ${expr.value(encode ? encode(value) : value)}`);
    }
  }
  for (const [key, value] of Object.entries(parts.set ?? {}))
    sets.push(`${expr.name(key)} = ${expr.value(value)}`);
  for (const key of parts.remove ?? []) removes.push(expr.name(key));
  if (sets.length === 0 && removes.length === 0) {
    const noop = expr.name(parts.noopAttribute);
    sets.push(`${noop} = ${noop}`);
  }
  return [
    sets.length > 0 ? `SET ${sets.join(", ")}` : "",
    removes.length > 0 ? `REMOVE ${removes.join(", ")}` : "",
  ]
    .filter(Boolean)
    .join(" ");
}

/** `attribute_exists(key)` plus one equality/IN clause per expected field. */
export function conditionExpression(
  expr: Expression,
  keyAttribute: string,
  expected: Record<string, unknown | readonly unknown[] | undefined>,
): string {
  const clauses = [`attribute_exists(${expr.name(keyAttribute)})`];
  for (const [key, value] of Object.entries(expected)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      if (value.length === 0) throw new BugError(`expectation on ${key} lists no values`);
      clauses.push(`${expr.name(key)} IN (${value.map((v) => expr.value(v)).join(", ")})`);
    } else clauses.push(`${expr.name(key)} = ${expr.value(value)}`);
  }
  return clauses.join(" AND ");
}

/** `status in [pending] and attempt=0` for error messages. */
export function describeExpectation(expected: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(expected)) {
    if (value === undefined) continue;
    parts.push(Array.isArray(value) ? `${key} in [${value.join(", ")}]` : `${key}=${JSON.stringify(value)}`);
  }
  return parts.length > 0 ? parts.join(" and ") : "it to exist";
}
