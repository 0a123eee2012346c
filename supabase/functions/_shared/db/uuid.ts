/**
 * An id as Postgres's `uuid` type takes it: any 8-4-4-4-12 hex, not only the
 * RFC 9562 versions `z.uuid()` allows. Seeds and imports give users ids like
 * `00000000-0000-0000-0000-000000000001`; every id Herald is sent (user ids,
 * endpoint ids, path ids, hook recipients) follows the database's rule.
 *
 * @module
 */
import { z } from "zod";

export const Uuid = z.guid();
