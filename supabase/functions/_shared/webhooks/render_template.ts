/**
 * Rendering of hook-rule templates: `{{record.user_id}}`,
 * `{{old_record.address.city}}`, `{{table}}`, `{{schema}}`, `{{type}}` are
 * replaced by values of the database event. Substitution only: nothing is
 * evaluated, and only the event's own data is reachable.
 *
 * @module
 */
import { Uuid } from "../db/uuid.ts";

/** A row event as Supabase Database Webhooks (and `herald.post_database_event`) send it. */
export interface DatabaseEvent {
  type: "INSERT" | "UPDATE" | "DELETE";
  table: string;
  schema: string;
  record: Record<string, unknown> | null;
  old_record: Record<string, unknown> | null;
}

/** What `herald.hook_rules.template` holds; its shape is checked by the table. */
export interface RuleTemplate {
  /** Each renders to a user id, e.g. `"{{record.user_id}}"`. */
  recipients: string[];
  title?: string;
  body?: string;
  image?: string;
  category?: string;
  data?: Record<string, string>;
  /** Copied as given: `push`, `email`, `webhook`. */
  channels?: string[];
  priority?: "normal" | "high";
  critical?: boolean;
  ttl_seconds?: number;
  /** Copied as given (not rendered): `android`, `apns`, `webpush`, `analytics_label`, `email`. */
  overrides?: Record<string, unknown>;
}

/**
 * Notification content in the shape `herald.enqueue` takes (a type, not an
 * interface, so it passes as JSON to postgres.js).
 */
export type NotifyContent = {
  title?: string;
  body?: string;
  image?: string;
  category?: string;
  data: Record<string, string>;
  channels?: string[];
  priority?: "normal" | "high";
  critical?: boolean;
  ttl_seconds?: number;
  overrides?: Record<string, unknown>;
};

/** A rendered rule: whom to notify, what to say, and which recipients were not user ids. */
export interface RenderedRule {
  /** Distinct user ids (lower-case UUIDs). */
  recipients: string[];
  /** Rendered recipients that are not UUIDs (Postgres's rule, db/uuid.ts), as rendered (`""` for a missing path). */
  skipped: string[];
  content: NotifyContent;
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_$-]+)*)\s*\}\}/g;
const WHOLE_PLACEHOLDER = new RegExp(`^\\s*${PLACEHOLDER.source}\\s*$`);
const ROOTS = new Set(["type", "table", "schema", "record", "old_record"]);
/** Keys that lead into the prototype chain rather than the data; they resolve to nothing. */
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);
const ARRAY_INDEX = /^(0|[1-9]\d{0,8})$/;

/**
 * Replaces every `{{path}}` in `template` with the value at that path of the
 * event: strings as they are, numbers and booleans as text, objects and arrays
 * as JSON, and missing paths (or `null`) as the empty string.
 *
 * @example
 * ```ts
 * renderTemplate("Order {{record.id}} is {{record.status}}", event); // "Order 42 is shipped"
 * ```
 */
export function renderTemplate(template: string, event: DatabaseEvent): string {
  return template.replace(PLACEHOLDER, (_, path: string) => _text(_resolve(event, path)));
}

/**
 * Renders a whole rule template into notification content and recipients.
 * A recipient that is exactly one placeholder resolving to an array (e.g. a
 * `uuid[]` column) contributes each element.
 *
 * @example
 * ```ts
 * const { recipients, skipped, content } = renderRule(
 *   { recipients: ["{{record.user_id}}"], title: "Order {{record.id}} shipped" },
 *   event,
 * );
 * ```
 */
export function renderRule(template: RuleTemplate, event: DatabaseEvent): RenderedRule {
  const rendered = template.recipients.flatMap((recipient) => {
    const whole = recipient.match(WHOLE_PLACEHOLDER)?.[1];
    const value = whole === undefined ? undefined : _resolve(event, whole);
    return Array.isArray(value)
      ? value.map((element) => _text(element).trim())
      : [renderTemplate(recipient, event).trim()];
  });
  const recipients = [
    ...new Set(rendered.filter((r) => Uuid.safeParse(r).success).map((r) => r.toLowerCase())),
  ];
  const skipped = rendered.filter((r) => !Uuid.safeParse(r).success);
  const optional = (value: string | undefined) => {
    const text = value === undefined ? "" : renderTemplate(value, event);
    return text === "" ? undefined : text;
  };
  const data = Object.fromEntries(
    Object.entries(template.data ?? {}).map(([key, value]) => [key, renderTemplate(value, event)]),
  );
  return {
    recipients,
    skipped,
    content: {
      title: optional(template.title),
      body: optional(template.body),
      image: optional(template.image),
      category: optional(template.category),
      data,
      channels: template.channels,
      priority: template.priority,
      critical: template.critical,
      ttl_seconds: template.ttl_seconds,
      overrides: template.overrides,
    },
  };
}

/** The value at a dotted path, reading own properties of the event's data only. */
function _resolve(event: DatabaseEvent, path: string): unknown {
  const [root, ...rest] = path.split(".");
  if (!ROOTS.has(root)) return undefined;
  let value: unknown = event[root as keyof DatabaseEvent];
  for (const key of rest) {
    if (FORBIDDEN_KEYS.has(key) || value === null || typeof value !== "object") return undefined;
    if (Array.isArray(value)) {
      if (!ARRAY_INDEX.test(key)) return undefined;
      value = value[Number(key)];
    } else {
      if (!Object.hasOwn(value, key)) return undefined;
      value = (value as Record<string, unknown>)[key];
    }
  }
  return value;
}

function _text(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
