/**
 * A customer's webhook endpoint: takes any method and path, answers 204
 * unless the behaviour queue says otherwise (any status and headers, e.g. a
 * 410, a 503 with `Retry-After`, a 302 with `Location`). What arrived — raw
 * body included — is in `GET /_control/requests`.
 *
 * @module
 */
import { type FakeHandler, scriptedResponse } from "./control.ts";

/** Handles every request to the receiver. */
export function webhookReceiverHandler(): FakeHandler {
  return (_req, scripted) =>
    scripted ? scriptedResponse(scripted) : new Response(null, { status: 204 });
}
