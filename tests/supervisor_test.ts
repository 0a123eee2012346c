/**
 * The local stack's supervisor restarts a child marked `restart` when it
 * dies (the dispatcher under `npm start`), with growing waits, and says so.
 */
import assert from "node:assert/strict";
import { Supervisor } from "../scripts/stack/supervisor.ts";
import { eventually } from "./support/dispatcher_process.ts";

Deno.test("supervisor: a child that keeps dying is restarted after 1 s, then 2 s, and reported each time", async () => {
  const starts = await Deno.makeTempFile();
  const restarts: [string, number | null, number][] = [];
  const unexpected: string[] = [];
  const supervisor = new Supervisor({
    logDir: await Deno.makeTempDir(),
    onRestart: (name, status, delayMs) => restarts.push([name, status.code, delayMs]),
    onUnexpectedExit: (name) => unexpected.push(name),
  });
  try {
    await supervisor.spawn({
      name: "dying",
      command: "sh",
      args: ["-c", `echo started >> ${starts}; exit 3`],
      restart: true,
    });
    await eventually("a third start", async () => {
      const lines = (await Deno.readTextFile(starts)).trim().split("\n");
      return lines.length >= 3 ? lines : undefined;
    }, 10_000);
    assert.deepEqual(restarts.slice(0, 2), [["dying", 3, 1_000], ["dying", 3, 2_000]]);
    assert.deepEqual(unexpected, [], "a restarted child is not a crash of the stack");
  } finally {
    await supervisor.stopAll(1_000);
    await Deno.remove(starts);
  }
});

Deno.test("supervisor: a child without restart that dies is reported, not restarted", async () => {
  const unexpected: [string, number][] = [];
  const supervisor = new Supervisor({
    logDir: await Deno.makeTempDir(),
    onUnexpectedExit: (name, status) => unexpected.push([name, status.code]),
  });
  try {
    const child = await supervisor.spawn({ name: "once", command: "sh", args: ["-c", "exit 4"] });
    await child.status;
    await eventually(
      "the exit to be reported",
      () => Promise.resolve(unexpected.length > 0 ? true : undefined),
    );
    assert.deepEqual(unexpected, [["once", 4]]);
  } finally {
    await supervisor.stopAll(1_000);
  }
});

Deno.test("supervisor: keepAlive makes a child that came up restart when it dies later", async () => {
  const starts = await Deno.makeTempFile();
  // The child dies when this file exists: alive first, as a service that came up.
  const die = `${starts}.die`;
  const unexpected: string[] = [];
  const restarts: string[] = [];
  const supervisor = new Supervisor({
    logDir: await Deno.makeTempDir(),
    onRestart: (name) => {
      restarts.push(name);
      Deno.removeSync(die); // the next one stays up
    },
    onUnexpectedExit: (name) => unexpected.push(name),
  });
  try {
    await supervisor.spawn({
      name: "service",
      command: "sh",
      args: ["-c", `echo started >> ${starts}; while [ ! -e ${die} ]; do sleep 0.05; done; exit 5`],
    });
    supervisor.keepAlive("service");
    await Deno.writeTextFile(die, "");
    await eventually("a second start", async () => {
      const lines = (await Deno.readTextFile(starts)).trim().split("\n");
      return lines.length >= 2 ? lines : undefined;
    }, 10_000);
    assert.deepEqual(unexpected, [], "a kept-alive child's exit is not a crash of the stack");
    assert.deepEqual(restarts, ["service"]);
  } finally {
    await supervisor.stopAll(1_000);
    await Deno.remove(starts);
    await Deno.remove(die).catch(() => {});
  }
});

Deno.test("supervisor: children have a process group of their own, so Ctrl-C reaches only the supervisor", async () => {
  const supervisor = new Supervisor({ logDir: await Deno.makeTempDir() });
  try {
    const child = await supervisor.spawn({ name: "quiet", command: "sleep", args: ["30"] });
    const group = (pid: number) =>
      Number(Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ")[2]);
    assert.notEqual(group(child.pid), group(Deno.pid));
    assert.equal(group(child.pid), child.pid);
  } finally {
    await supervisor.stopAll(1_000);
  }
});
