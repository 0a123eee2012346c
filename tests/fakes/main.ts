/**
 * Starts all four stand-ins. Run as a program it serves them on the local
 * stack's ports, with the stack's service account registered.
 *
 * @module
 */
import { loadStackConfig } from "../../scripts/stack/config.ts";
import { type Fake, FakeControl, serveFake } from "./control.ts";
import { emailHandler } from "./email.ts";
import { fcmHandler } from "./fcm.ts";
import { googleOAuthHandler, type ServiceAccountJson, type TokenRegistry } from "./google_oauth.ts";
import { webhookReceiverHandler } from "./webhook_receiver.ts";

/** The running stand-ins. */
export interface Fakes {
  fcm: Fake;
  oauth: Fake;
  email: Fake;
  webhook: Fake;
  /** The OAuth stand-in's token URL, the `token_uri` of its service accounts. */
  tokenUrl: string;
  close(): Promise<void>;
}

/** Starts the stand-ins; a port of 0 picks a free one. */
export async function startFakes(options: {
  ports: { fcm: number; oauth: number; email: number; webhook: number };
  serviceAccounts?: ServiceAccountJson[];
  emailApiKeys?: string[];
}): Promise<Fakes> {
  const tokens: TokenRegistry = new Map();
  let tokenUrl = "";
  const oauth = serveFake({
    port: options.ports.oauth,
    handler: await googleOAuthHandler({
      accounts: options.serviceAccounts ?? [],
      tokens,
      tokenUrl: () => tokenUrl,
    }),
  });
  tokenUrl = `${oauth.url}/token`;
  const fcmControl = new FakeControl();
  const fcm = serveFake({
    port: options.ports.fcm,
    control: fcmControl,
    handler: fcmHandler({ tokens, control: fcmControl }),
  });
  const emailControl = new FakeControl();
  const email = serveFake({
    port: options.ports.email,
    control: emailControl,
    handler: emailHandler({ apiKeys: options.emailApiKeys, control: emailControl }),
  });
  const webhookControl = new FakeControl();
  const webhook = serveFake({
    port: options.ports.webhook,
    control: webhookControl,
    handler: webhookReceiverHandler(webhookControl),
  });
  return {
    fcm,
    oauth,
    email,
    webhook,
    tokenUrl,
    async close() {
      await Promise.all([fcm, oauth, email, webhook].map((f) => f.close()));
    },
  };
}

if (import.meta.main) {
  const stack = await loadStackConfig();
  const account = JSON.parse(
    await Deno.readTextFile(stack.serviceAccountPath),
  ) as ServiceAccountJson;
  const fakes = await startFakes({ ports: stack.ports, serviceAccounts: [account] });
  console.log(`FCM stand-in       ${fakes.fcm.url} (project ${account.project_id})`);
  console.log(`Google OAuth       ${fakes.tokenUrl}`);
  console.log(`e-mail API         ${fakes.email.url}/emails`);
  console.log(`webhook receiver   ${fakes.webhook.url}`);
}
