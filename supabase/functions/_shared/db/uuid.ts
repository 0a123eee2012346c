/**
 * An id as Postgres's `uuid` type takes it: any 8-4-4-4-12 hex, not only the
 * RFC 9562 versions `z.uuid()` allows. Seeds and imports give users ids like
 * `00000000-0000-0000-0000-000000000001`; every id Herald is sent (user ids,
 * endpoint ids, path ids, hook recipients) follows the database's rule.
 * Lower-cased, as Postgres prints a uuid back: ids also meet as text (a
 * raw target's endpoint_id in jsonb), and echoes match the stored form.
 *
 * @module
 */
import { z } from "zod";

export const Uuid = z.guid().overwrite((id) => id.toLowerCase());
