/**
 * Writes the Prometheus text exposition format (0.0.4) or OpenMetrics 1.0,
 * whichever the scraper asked for. Families are declared once with their type
 * and help; samples follow in order.
 *
 * @module
 */

/** Label names to values; values are escaped here. */
export type Labels = Record<string, string>;

/** A family's type; `info` is written as a gauge in the Prometheus format. */
export type MetricType = "counter" | "gauge" | "histogram" | "info";

/** The content types of the two formats. */
export const CONTENT_TYPES = {
  prometheus: "text/plain; version=0.0.4; charset=utf-8",
  openmetrics: "application/openmetrics-text; version=1.0.0; charset=utf-8",
} as const;

/** Which format an `Accept` header asks for (Prometheus sends OpenMetrics first when it can). */
export function formatFor(accept: string | null): keyof typeof CONTENT_TYPES {
  return accept?.includes("application/openmetrics-text") ? "openmetrics" : "prometheus";
}

/** Collects families and samples, then renders them. */
export class Exposition {
  readonly #lines: string[] = [];
  readonly #format: keyof typeof CONTENT_TYPES;

  constructor(format: keyof typeof CONTENT_TYPES) {
    this.#format = format;
  }

  /**
   * Declares a family. `name` is the sample name for counters (with `_total`)
   * and info (with `_info`), as Prometheus users query it.
   */
  family(name: string, type: MetricType, help: string): this {
    const open = this.#format === "openmetrics";
    const familyName = open && type === "counter"
      ? name.replace(/_total$/, "")
      : open && type === "info"
      ? name.replace(/_info$/, "")
      : name;
    const shownType = !open && type === "info" ? "gauge" : type;
    this.#lines.push(`# HELP ${familyName} ${_escapeHelp(help)}`);
    this.#lines.push(`# TYPE ${familyName} ${shownType}`);
    return this;
  }

  /** One sample line. */
  sample(name: string, labels: Labels, value: number): this {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${_escapeLabel(v)}"`);
    this.#lines.push(`${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${_number(value)}`);
    return this;
  }

  /**
   * A histogram's samples from non-cumulative bucket counts (one per bound,
   * then +Inf) and the sum of observations.
   */
  histogram(name: string, labels: Labels, bounds: number[], counts: number[], sum: number): this {
    let cumulative = 0;
    bounds.forEach((bound, i) => {
      cumulative += counts[i] ?? 0;
      this.sample(`${name}_bucket`, { ...labels, le: _number(bound) }, cumulative);
    });
    cumulative += counts[bounds.length] ?? 0;
    this.sample(`${name}_bucket`, { ...labels, le: "+Inf" }, cumulative);
    this.sample(`${name}_sum`, labels, sum);
    this.sample(`${name}_count`, labels, cumulative);
    return this;
  }

  /** The document, ending with `# EOF` in OpenMetrics. */
  render(): string {
    const end = this.#format === "openmetrics" ? "# EOF\n" : "";
    return `${this.#lines.join("\n")}\n${end}`;
  }
}

function _number(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (Number.isNaN(value)) return "NaN";
  return String(value);
}

function _escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function _escapeHelp(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
