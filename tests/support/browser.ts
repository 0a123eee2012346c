/**
 * Headless Chromium (Debian's `chromium`) driven over the DevTools protocol
 * with Deno's own WebSocket: a page to open, script to evaluate (also inside
 * a child frame, such as a sandboxed e-mail), clicks, and screenshots. No
 * driver library: the handful of CDP methods tests need is smaller than one.
 *
 * @module
 */

/** The most of a page a screenshot keeps, in CSS pixels from the top. */
const SCREENSHOT_MAX_HEIGHT = 4_000;

/** A page in the browser. */
export interface Page {
  goto(url: string): Promise<void>;
  /** Evaluates `expression` in the page (or in the frame `frameId`); returns its JSON value. */
  evaluate<T = unknown>(expression: string, frameId?: string): Promise<T>;
  /** Polls `expression` until it is truthy; returns its value. */
  waitFor<T = unknown>(expression: string, what: string, timeoutMs?: number): Promise<T>;
  /** The ids of the page's child frames. */
  childFrames(): Promise<string[]>;
  /** Saves a PNG of the page to `path`. */
  screenshot(path: string): Promise<void>;
}

/** A running browser. */
export interface Browser {
  page(): Promise<Page>;
  close(): Promise<void>;
}

/** Starts headless Chromium with a throwaway profile and no background networking. */
export async function startBrowser(): Promise<Browser> {
  const profile = await Deno.makeTempDir({ prefix: "herald-chromium-" });
  const child = new Deno.Command("chromium", {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
      // Sandboxed frames (a rendered e-mail) in the page's own process, where its frame tree reaches them.
      "--disable-features=IsolateSandboxedIframes",
      "--window-size=1280,1000",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      "about:blank",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Chromium prints where its DevTools listen; read stderr until then, then drain it.
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  let endpoint: string | undefined;
  const deadline = Date.now() + 30_000;
  while (!endpoint) {
    if (Date.now() > deadline) throw new Error(`chromium did not start: ${seen.slice(-500)}`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`chromium exited: ${seen.slice(-500)}`);
    seen += value;
    endpoint = seen.match(/DevTools listening on (ws:\/\/\S+)/)?.[1];
  }
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })().catch(() => {});

  const socket = new WebSocket(endpoint);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error("could not reach chromium's DevTools"));
  });
  let nextId = 0;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    const call = message.id !== undefined ? waiting.get(message.id) : undefined;
    if (!call) return;
    waiting.delete(message.id);
    if (message.error) {
      call.reject(new Error(`${message.error.message} ${message.error.data ?? ""}`));
    } else call.resolve(message.result);
  };
  const send = (
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
    // deno-lint-ignore no-explicit-any
  ): Promise<any> =>
    new Promise((resolve, reject) => {
      const id = ++nextId;
      waiting.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });

  const page = async (): Promise<Page> => {
    const { targetId } = await send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
    const call = (method: string, params: Record<string, unknown> = {}) =>
      send(method, params, sessionId);
    await call("Page.enable");
    await call("Runtime.enable");
    const worlds = new Map<string, number>();
    const evaluate = async <T>(expression: string, frameId?: string): Promise<T> => {
      let contextId: number | undefined;
      if (frameId) {
        contextId = worlds.get(frameId);
        if (contextId === undefined) {
          ({ executionContextId: contextId } = await call("Page.createIsolatedWorld", {
            frameId,
            worldName: "herald-test",
          }));
          worlds.set(frameId, contextId!);
        }
      }
      const { result, exceptionDetails } = await call("Runtime.evaluate", {
        expression,
        awaitPromise: true,
        returnByValue: true,
        ...(contextId !== undefined ? { contextId } : {}),
      });
      if (exceptionDetails) {
        throw new Error(
          `in the page: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`,
        );
      }
      return result.value as T;
    };
    return {
      async goto(url) {
        worlds.clear();
        await call("Page.navigate", { url });
        await evaluate_ready();
      },
      evaluate,
      async waitFor<T>(expression: string, what: string, timeoutMs = 15_000) {
        const until = Date.now() + timeoutMs;
        while (Date.now() < until) {
          const value = await evaluate<T>(expression).catch(() => undefined);
          if (value) return value;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`timed out waiting for ${what}`);
      },
      async childFrames() {
        const { frameTree } = await call("Page.getFrameTree");
        return (frameTree.childFrames ?? []).map((f: { frame: { id: string } }) => f.frame.id);
      },
      async screenshot(path) {
        // The page's top SCREENSHOT_MAX_HEIGHT pixels: the viewport grown to the content, as
        // Puppeteer's fullPage does (captureBeyondViewport leaves sandboxed frames, the e-mails,
        // blank), but no taller. After the whole suite the inbox holds up to 2,000 items, a page
        // far taller than Chromium can capture ("Unable to capture screenshot").
        await call("Page.bringToFront"); // as Puppeteer does: a tab behind another may not paint
        const { cssContentSize } = await call("Page.getLayoutMetrics");
        await call("Emulation.setDeviceMetricsOverride", {
          width: Math.ceil(cssContentSize.width),
          height: Math.min(Math.ceil(cssContentSize.height), SCREENSHOT_MAX_HEIGHT),
          deviceScaleFactor: 1,
          mobile: false,
        });
        try {
          // Two animation frames: the page has laid out and painted at the new size.
          await evaluate(
            "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))",
          );
          const { data } = await call("Page.captureScreenshot", { format: "png" });
          await Deno.writeFile(path, Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
        } finally {
          await call("Emulation.clearDeviceMetricsOverride");
        }
      },
    };
    async function evaluate_ready() {
      const until = Date.now() + 15_000;
      while (Date.now() < until) {
        const state = await evaluate<string>("document.readyState").catch(() => "loading");
        if (state === "complete") return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error("the page did not load");
    }
  };

  return {
    page,
    async close() {
      await send("Browser.close").catch(() => {});
      socket.close();
      await child.status;
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}
