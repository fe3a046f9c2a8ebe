// The spaces gateway driven by the @hsafa/node SDK (0.1.0, the client existing users run) where it covers a
// flow, and by a small raw HTTP/SSE client where the SDK has no call (an agent runtime reporting run events,
// Last-Event-ID, exact status codes). Runs against whatever storage and Redis the environment selects
// (DATABASE_URL, REDIS_URL): scripts/test-clients runs it on the embedded defaults and on PostgreSQL + Redis,
// where the database is shared, so every externalId and agent config carries this run's tag.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";

import { HsafaClient, HsafaApiError, SSEStream } from "@hsafa/node";

import { startServer, waitFor, sleep } from "./harness.js";

const SK = `sk_${"a1".repeat(24)}`;
const PK = `pk_${"b2".repeat(24)}`;
const JWT_SECRET = "spaces-node-tests-jwt-secret-0123456789abcdef";
const TAG = `n${process.pid}x${Date.now().toString(36)}`;

const NOT_MEMBER = "Entity is not a member of this SmartSpace";
const SECRET_ONLY = "This operation requires the secret key";

let server;
let admin;

before(async () => {
  server = await startServer({
    env: {
      HSAFA_SECRET_KEY: SK,
      HSAFA_PUBLIC_KEY: PK,
      JWT_SECRET,
      SWITCHYARD__DATABASE__POOL_SIZE: "8",
      // A private namespace in a shared Redis (ignored without Redis).
      SWITCHYARD__REDIS__KEY_PREFIX: `sy-node-spaces-${process.pid}-${Date.now()}`,
    },
  });
  admin = new HsafaClient({ gatewayUrl: server.url, secretKey: SK });
});
after(async () => {
  await server?.stop();
});

// ---------------------------------------------------------------------------------------------------------
// Identities

const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/** An HS256 user JWT signed with JWT_SECRET, as the customer's auth server issues it. */
function signJwt(claims) {
  const head = b64url({ alg: "HS256", typ: "JWT" });
  const body = b64url({ exp: Math.floor(Date.now() / 1000) + 600, ...claims });
  const sig = crypto.createHmac("sha256", JWT_SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

const ext = (name) => `${TAG}-${name}`;

/** A browser user's SDK client: public key + the JWT whose `sub` is the entity's externalId. */
const userClient = (name) => new HsafaClient({ gatewayUrl: server.url, publicKey: PK, jwt: signJwt({ sub: ext(name) }) });
const userHeaders = (name) => ({ "x-public-key": PK, Authorization: `Bearer ${signJwt({ sub: ext(name) })}` });
const SECRET = { "x-secret-key": SK };

async function human(name) {
  const { entity } = await admin.entities.create({ type: "human", externalId: ext(name), displayName: name });
  return entity.id;
}

async function agentEntity(name) {
  const { agentId } = await admin.agents.create({ name, config: { model: `${TAG}-${name}` } });
  const { entity } = await admin.entities.createAgent({ agentId, displayName: name });
  return entity.id;
}

async function space(members, name = "room") {
  const { smartSpace } = await admin.spaces.create({ name: `${TAG}-${name}` });
  for (const entityId of members) await admin.spaces.addMember(smartSpace.id, { entityId });
  return smartSpace.id;
}

/** A raw request: { status, body }. */
async function call(method, path, { headers = SECRET, body } = {}) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}

/** The agent runtime's report of one run event (the SDK has no call for it). */
async function report(runId, type, data = {}) {
  const r = await call("POST", `/api/runs/${runId}/events`, { body: { type, data } });
  assert.equal(r.status, 201, `report ${type}: ${JSON.stringify(r.body)}`);
  return r.body;
}

// ---------------------------------------------------------------------------------------------------------
// Streams

/**
 * A raw SSE client: keeps every event as { id, event, data (parsed) }, comments apart, and whether the
 * server ended the stream. `open` resolves once the response headers are in (the server answers only when
 * the stream is subscribed, so everything written after that is delivered).
 */
async function rawStream(path, headers, lastEventId) {
  const abort = new AbortController();
  const res = await fetch(`${server.url}${path}`, {
    headers: { ...headers, Accept: "text/event-stream", ...(lastEventId ? { "Last-Event-ID": lastEventId } : {}) },
    signal: abort.signal,
  });
  const s = { status: res.status, events: [], comments: [], ended: false, close: () => abort.abort() };
  if (res.status !== 200) {
    s.body = await res.json();
    return s;
  }
  (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const ev = { data: [] };
          for (const line of frame.split("\n")) {
            if (line.startsWith(":")) s.comments.push(line);
            else if (line.startsWith("id: ")) ev.id = line.slice(4);
            else if (line.startsWith("event: ")) ev.event = line.slice(7);
            else if (line.startsWith("data: ")) ev.data.push(line.slice(6));
          }
          if (ev.data.length) s.events.push({ id: ev.id, event: ev.event, data: JSON.parse(ev.data.join("\n")) });
        }
      }
    } catch {
      // aborted by close()
    }
    s.ended = true;
  })();
  return s;
}

/** Everything an SDK stream delivers, in order. */
function collect(stream) {
  const events = [];
  stream.on("*", (e) => events.push(e));
  return events;
}

/** Waits until `list` holds `n` entries matching `pred`, and returns them. */
async function take(list, n, pred = () => true, what = "events") {
  await waitFor(() => list.filter(pred).length >= n, `${n} ${what}`, 15000);
  return list.filter(pred).slice(0, n);
}

/**
 * Waits until an SDK stream (which reports no "open") is subscribed: posts marker messages (no runs) to
 * `spaceId` until one arrives on it.
 */
async function untilSubscribed(events, spaceId, entityId) {
  const marker = `sync-${crypto.randomUUID()}`;
  await waitFor(
    async () => {
      if (events.some((e) => e.type === "smartSpace.message" && e.data.message?.content === marker)) return true;
      await admin.messages.send(spaceId, { content: marker, entityId, triggerAgents: false });
      await sleep(150);
      return events.some((e) => e.type === "smartSpace.message" && e.data.message?.content === marker);
    },
    "the stream to be subscribed",
    15000,
  );
}

const isMsg = (e) => (e.type ?? e.data?.type) === "smartSpace.message";
const content = (e) => (e.data.data ?? e.data).message.content;

// ---------------------------------------------------------------------------------------------------------

test("SDK: a backend sets up a space; a browser user (pk + JWT) sends, reads history and receives the stream", async () => {
  // Agents: the same configuration is the same agent; the SDK's Agent fields.
  const config = { model: `${TAG}-helper`, tools: ["weather"] };
  const first = await admin.agents.create({ name: "helper", config });
  assert.equal(first.created, true);
  assert.match(first.configHash, /^[0-9a-f]{64}$/);
  const again = await admin.agents.create({ config: { tools: ["weather"], model: `${TAG}-helper` } });
  assert.deepEqual([again.agentId, again.created], [first.agentId, false]);
  const { agent } = await admin.agents.get(first.agentId);
  assert.deepEqual(agent.configJson, config);
  assert.equal(agent.name, "helper");

  // The SDK's one-call setup: space + agent + human entities + memberships.
  const setup = await admin.setup.createSpace({
    name: `${TAG}-setup`,
    agents: [{ agentId: first.agentId, displayName: "Helper" }],
    humans: [{ externalId: ext("alice"), displayName: "Alice" }],
  });
  const [bot, alice] = setup.entities;
  assert.deepEqual([bot.type, bot.agentId, alice.type, alice.externalId], ["agent", first.agentId, "human", ext("alice")]);
  for (const m of setup.memberships) {
    assert.equal(m.smartSpaceId, setup.smartSpace.id);
    assert.match(m.id, /^[0-9a-f-]{36}$/);
    assert.ok(!Number.isNaN(Date.parse(m.joinedAt)));
  }
  const spaceId = setup.smartSpace.id;
  assert.equal(setup.smartSpace.showAgentReasoning, false);
  const shown = await admin.spaces.update(spaceId, { showAgentReasoning: true, description: "d" });
  assert.deepEqual([shown.smartSpace.showAgentReasoning, shown.smartSpace.description], [true, "d"]);
  // Agents page with the SDK's limit/offset.
  const second = await admin.agents.create({ config: { model: `${TAG}-second` } });
  const all = (await admin.agents.list({ limit: 200 })).agents;
  assert.ok(all.some((a) => a.id === second.agentId));
  const page = (await admin.agents.list({ limit: 1, offset: 1 })).agents;
  assert.deepEqual(
    page.map((a) => a.id),
    [all[1].id],
  );
  // An existing externalId is updated, not duplicated.
  const updated = await admin.entities.create({ type: "human", externalId: ext("alice"), displayName: "Alice B." });
  assert.deepEqual([updated.entity.id, updated.entity.displayName], [alice.id, "Alice B."]);
  const bob = await human("bob");

  const user = userClient("alice");
  // Her own spaces only, whatever she asks for.
  const mine = await user.spaces.list({ entityId: bob });
  assert.deepEqual(
    mine.smartSpaces.map((s) => s.id),
    [spaceId],
  );
  const { members } = await user.spaces.listMembers(spaceId);
  assert.deepEqual(members.map((m) => m.entity.id).sort(), [alice.id, bot.id].sort());

  const stream = user.spaces.subscribe(spaceId, { afterSeq: 0 });
  const seen = collect(stream);
  try {
    // The sender is the JWT's entity even when the body names someone else; role follows the sender.
    const sent = await user.messages.send(spaceId, { content: "hello", entityId: bob, role: "assistant" });
    assert.equal(sent.message.entityId, alice.id);
    assert.equal(sent.message.role, "user");
    assert.deepEqual([sent.message.entityType, sent.message.entityName], ["human", "Alice B."]);
    assert.equal(typeof sent.message.seq, "string");
    assert.deepEqual(sent.runs, [{ runId: sent.runs[0].runId, agentEntityId: bot.id }]);
    await user.messages.send(spaceId, { content: "anyone?", triggerAgents: false });

    const { messages } = await user.messages.list(spaceId);
    assert.deepEqual(
      messages.map((m) => [m.content, m.seq, m.entityId]),
      [
        ["hello", "1", alice.id],
        ["anyone?", "2", alice.id],
      ],
    );
    assert.deepEqual((await user.messages.list(spaceId, { afterSeq: "1" })).messages.map((m) => m.content), ["anyone?"]);
    assert.deepEqual([messages[0].entityType, messages[0].entityName], ["human", "Alice B."]);
    const { run } = await admin.runs.get(sent.runs[0].runId);
    assert.deepEqual([run.triggeredById, run.status, run.agentId], [alice.id, "queued", first.agentId]);

    // The stream replays from seq 0 (both joins), then the messages and the run, in seq order.
    await take(seen, 5);
    const types = seen.map((e) => e.type);
    assert.deepEqual(types.slice(0, 5), [
      "smartSpace.member.joined",
      "smartSpace.member.joined",
      "smartSpace.message",
      "run.created",
      "smartSpace.message",
    ]);
    const seqs = seen.map((e) => e.seq);
    assert.deepEqual(seqs.slice(0, 5), [1, 2, 3, 4, 5], "stream seqs are numbers, gap-free");
    const hello = seen[2];
    assert.equal(hello.data.message.content, "hello");
    assert.equal(hello.data.message.entityName, "Alice B.");
    assert.equal(hello.smartSpaceId, spaceId);
    assert.equal(hello.entityId, alice.id);
    assert.equal(hello.entityType, "human");
    assert.equal(hello.id, "3", "the SSE id of a space stream is the seq");
    assert.ok(!Number.isNaN(Date.parse(hello.ts)));
    const created = seen[3];
    assert.deepEqual([created.runId, created.agentEntityId], [sent.runs[0].runId, bot.id]);
  } finally {
    stream.close();
  }
});

test("agent runtime on its entity stream: run, text deltas, a tool call, the user's tool result, completion", async () => {
  const alice = await human("rt-alice");
  const bot = await agentEntity("rt-bot");
  const spaceId = await space([alice, bot]);
  const user = userClient("rt-alice");

  // The runtime listens on its agent entity's stream with the SDK (secret key).
  const runtimeStream = admin.entities.subscribe(bot);
  const runtimeSeen = collect(runtimeStream);
  // The user listens on the space with the SDK (public key + JWT).
  const userStream = user.spaces.subscribe(spaceId);
  const userSeen = collect(userStream);
  try {
    await untilSubscribed(runtimeSeen, spaceId, alice);
    await untilSubscribed(userSeen, spaceId, alice);

    // The runtime: on run.created start, stream text, call a tool; on the tool's output finish.
    const onCreated = async (e) => {
      await report(e.runId, "run.started");
      await report(e.runId, "text.delta", { delta: "Let me " });
      await report(e.runId, "text.delta", { delta: "check. " });
      await report(e.runId, "tool-input-available", { toolCallId: "call-1", toolName: "weather", input: { city: "Oslo" } });
      await report(e.runId, "run.waiting_tool");
    };
    runtimeStream.on("run.created", onCreated);
    runtimeStream.on("tool-output-available", async (e) => {
      assert.equal(e.data.toolCallId, "call-1");
      await report(e.runId, "run.started");
      await report(e.runId, "text.delta", { delta: `It is ${e.data.output.celsius} degrees.` });
      await report(e.runId, "run.completed", { text: "done" });
    });
    // The user's page: answers the tool call once the run waits for it (answering on tool-input-available
    // could overtake the runtime's own run.waiting_tool).
    userStream.on("run.waiting_tool", async (e) => {
      const call = userSeen.findLast((x) => x.runId === e.runId && x.type === "tool-input-available");
      const r = await user.tools.submitRunResult(e.runId, { callId: call.data.toolCallId, result: { celsius: 4 } });
      assert.equal(r.success, true);
    });

    const sent = await user.messages.send(spaceId, { content: "Weather in Oslo?" });
    const runId = sent.runs[0].runId;
    const expected = [
      "run.created",
      "run.started",
      "text.delta",
      "text.delta",
      "tool-input-available",
      "run.waiting_tool",
      "tool-output-available",
      "run.started",
      "text.delta",
      "run.completed",
    ];
    const ofRun = (e) => e.runId === runId;
    for (const [who, list] of [
      ["user", userSeen],
      ["runtime", runtimeSeen],
    ]) {
      const got = await take(list, expected.length, ofRun, `${who} run events`);
      assert.deepEqual(
        got.map((e) => e.type),
        expected,
        `${who} sees the run in order`,
      );
      const seqs = got.map((e) => e.seq);
      assert.ok(
        seqs.every((s, i) => i === 0 || s > seqs[i - 1]),
        `${who}: seqs increase`,
      );
      assert.equal(got[8].data.delta, "It is 4 degrees.");
      assert.ok(got.every((e) => e.smartSpaceId === spaceId && e.agentEntityId === bot));
    }
    // The user's message reached the runtime too, before its run.
    const runtimeMsg = runtimeSeen.findIndex((e) => e.type === "smartSpace.message" && e.data.message.content === "Weather in Oslo?");
    assert.ok(runtimeMsg >= 0 && runtimeMsg < runtimeSeen.findIndex(ofRun));

    // A second submission of the same call is refused; the run is stored as completed.
    await assert.rejects(user.tools.submitRunResult(runId, { callId: "call-1", result: {} }), (e) => {
      assert.ok(e instanceof HsafaApiError);
      return e.status === 409;
    });
    const { run } = await user.runs.get(runId);
    assert.deepEqual([run.status, run.agentEntityId, run.smartSpaceId], ["completed", bot, spaceId]);
    assert.ok(run.completedAt);
    const { events } = await user.runs.getEvents(runId);
    assert.deepEqual(
      events.map((e) => e.type),
      expected,
    );
    assert.deepEqual(events[4].payload, { toolCallId: "call-1", toolName: "weather", input: { city: "Oslo" } });
    assert.ok(events.every((e) => e.runId === runId && typeof e.seq === "number" && e.createdAt));
    // Reporting into a finished run is refused.
    assert.equal((await call("POST", `/api/runs/${runId}/events`, { body: { type: "text.delta", data: {} } })).status, 409);

    // A run the backend starts itself, with the SDK's CreateRunParams.
    runtimeStream.off("run.created", onCreated);
    const child = await admin.runs.create({
      smartSpaceId: spaceId,
      agentEntityId: bot,
      triggeredById: alice,
      parentRunId: runId,
      start: true,
    });
    assert.deepEqual([child.status, child.streamUrl], ["running", `/api/runs/${child.runId}/stream`]);
    const { run: started } = await user.runs.get(child.runId);
    assert.deepEqual([started.triggeredById, started.parentRunId, started.status], [alice, runId, "running"]);
    const childEvents = await take(runtimeSeen, 2, (e) => e.runId === child.runId, "the started run's events");
    assert.deepEqual(
      childEvents.map((e) => e.type),
      ["run.created", "run.started"],
    );
    assert.equal((await admin.runs.cancel(child.runId)).status, "canceled");
  } finally {
    runtimeStream.close();
    userStream.close();
  }
});

test("SDK sendAndWait (since=$) collects the agent's text and tool calls; run.failed carries errorMessage", async () => {
  const alice = await human("sw-alice");
  const bot = await agentEntity("sw-bot");
  const spaceId = await space([alice, bot]);
  const user = userClient("sw-alice");
  const runtimeStream = admin.entities.subscribe(bot);
  const runtimeSeen = collect(runtimeStream);
  try {
    await untilSubscribed(runtimeSeen, spaceId, alice);
    runtimeStream.on("run.created", async (e) => {
      // sendAndWait posts without waiting for its own stream to open: give it a moment, as a model would.
      await sleep(400);
      const failing = runtimeSeen.some((m) => isMsg(m) && m.data.message.content === "fail please");
      await report(e.runId, "run.started");
      if (failing) {
        await report(e.runId, "run.failed", { errorMessage: "model overloaded" });
        return;
      }
      await report(e.runId, "text.delta", { delta: "Sunny" });
      await report(e.runId, "tool-input-available", { toolCallId: "c9", toolName: "clock", input: {} });
      await call("POST", `/api/smart-spaces/${spaceId}/tool-results`, {
        body: { runId: e.runId, toolCallId: "c9", result: "noon", source: "server" },
      });
      await report(e.runId, "text.delta", { delta: " at noon" });
      await report(e.runId, "run.completed");
    });
    const answer = await user.messages.sendAndWait(spaceId, { content: "weather?", timeout: 15000 });
    assert.equal(answer.text, "Sunny at noon");
    assert.deepEqual(answer.toolCalls, [{ id: "c9", name: "clock", input: {}, output: "noon" }]);

    await assert.rejects(user.messages.sendAndWait(spaceId, { content: "fail please", timeout: 15000 }), {
      message: "model overloaded",
    });
    const { runs } = await admin.runs.list({ smartSpaceId: spaceId, status: "failed" });
    assert.equal(runs.length, 1);
    assert.equal(runs[0].errorMessage, "model overloaded");
  } finally {
    runtimeStream.close();
  }
});

test("every 401 and 403 of the permission matrix, with the documented texts; impersonation fails", async () => {
  const alice = await human("pm-alice");
  const bob = await human("pm-bob");
  const bot = await agentEntity("pm-bot");
  const mine = await space([alice, bot], "mine");
  const theirs = await space([bob, bot], "theirs");
  const theirRun = (await admin.messages.send(theirs, { content: "x", entityId: bob })).runs[0].runId;
  const myRun = (await admin.messages.send(mine, { content: "y", entityId: alice })).runs[0].runId;
  const missingRun = crypto.randomUUID();
  const A = userHeaders("pm-alice");

  const expect = async (method, path, headers, status, error, body) => {
    const r = await call(method, path, { headers, body });
    assert.deepEqual([r.status, r.body], [status, { error }], `${method} ${path}`);
  };
  const expectStream = async (path, headers, status, error) => {
    const s = await rawStream(path, headers);
    assert.deepEqual([s.status, s.body], [status, { error }], `stream ${path}`);
  };

  // 401s.
  const jwtOf = (claims) => ({ "x-public-key": PK, Authorization: `Bearer ${signJwt(claims)}` });
  const AUTH_REQUIRED = "Authentication required. Provide x-secret-key, or x-public-key + Authorization header.";
  await expect("GET", `/api/smart-spaces/${mine}`, {}, 401, AUTH_REQUIRED);
  await expect("GET", "/api/agents", {}, 401, "Missing x-secret-key header");
  await expect("GET", "/api/agents", { "x-secret-key": "sk_wrong" }, 401, "Invalid secret key");
  await expect("GET", `/api/smart-spaces/${mine}`, { "x-public-key": "pk_wrong", Authorization: A.Authorization }, 401, "Invalid public key");
  await expect("GET", `/api/smart-spaces/${mine}`, { "x-public-key": PK }, 401, "Missing or invalid Authorization header");
  await expect("GET", `/api/smart-spaces/${mine}`, { "x-public-key": PK, Authorization: "Token abc" }, 401, "Missing or invalid Authorization header");
  await expect("GET", `/api/smart-spaces/${mine}`, { Authorization: A.Authorization }, 401, "Missing x-public-key header");
  await expect("GET", `/api/smart-spaces/${mine}`, { "x-public-key": PK, Authorization: "Bearer not.a.jwt" }, 401, "Invalid or expired JWT");
  const expired = jwtOf({ sub: ext("pm-alice"), exp: Math.floor(Date.now() / 1000) - 3600 });
  await expect("GET", `/api/smart-spaces/${mine}`, expired, 401, "Invalid or expired JWT");
  await expect("GET", `/api/smart-spaces/${mine}`, jwtOf({ name: "no sub" }), 401, "JWT missing claim: sub");
  await expectStream(`/api/smart-spaces/${mine}/stream`, { "x-public-key": PK }, 401, "Missing or invalid Authorization header");

  // 403: a JWT for nobody.
  await expect("GET", "/api/smart-spaces", jwtOf({ sub: ext("nobody") }), 403, "No entity found for this user");

  // 403: a member's routes on a space she is not in, and on a run of that space, and on a run that does
  // not exist (she must not learn which runs exist).
  for (const [method, path, body] of [
    ["GET", `/api/smart-spaces/${theirs}`],
    ["GET", `/api/smart-spaces/${theirs}/members`],
    ["GET", `/api/smart-spaces/${theirs}/messages`],
    ["POST", `/api/smart-spaces/${theirs}/messages`, { content: "hi" }],
    ["POST", `/api/smart-spaces/${theirs}/messages`, { content: "hi", entityId: bob }],
    ["POST", `/api/smart-spaces/${theirs}/tool-results`, { runId: theirRun, toolCallId: "t", result: 1 }],
    ["GET", `/api/runs/${theirRun}`],
    ["GET", `/api/runs/${theirRun}/events`],
    ["POST", `/api/runs/${theirRun}/tool-results`, { callId: "t", result: 1 }],
    ["GET", `/api/runs/${missingRun}`],
    ["GET", `/api/runs/${missingRun}/events`],
    ["POST", `/api/runs/${missingRun}/tool-results`, { callId: "t", result: 1 }],
    ["GET", `/api/smart-spaces/${crypto.randomUUID()}`],
  ]) {
    await expect(method, path, A, 403, NOT_MEMBER, body);
  }
  for (const path of [`/api/smart-spaces/${theirs}/stream`, `/api/runs/${theirRun}/stream`, `/api/runs/${missingRun}/stream`]) {
    await expectStream(path, A, 403, NOT_MEMBER);
  }
  // The secret key is told what does not exist.
  await expect("GET", `/api/runs/${missingRun}`, SECRET, 404, "Run not found");
  // A run of another space submitted through her own space.
  await expect("POST", `/api/smart-spaces/${mine}/tool-results`, A, 400, "Run does not belong to this SmartSpace", {
    runId: theirRun,
    toolCallId: "t",
    result: 1,
  });
  await expect("POST", `/api/smart-spaces/${mine}/tool-results`, A, 400, "Run does not belong to this SmartSpace", {
    runId: missingRun,
    toolCallId: "t",
    result: 1,
  });

  // 403: everything else is the secret key's.
  for (const [method, path, body] of [
    ["GET", "/api/agents"],
    ["POST", "/api/agents", { config: {} }],
    ["GET", `/api/agents/${crypto.randomUUID()}`],
    ["GET", "/api/entities"],
    ["POST", "/api/entities", { type: "human", externalId: ext("pm-mallory") }],
    ["POST", "/api/entities/agent", { agentId: crypto.randomUUID() }],
    ["GET", `/api/entities/${alice}`],
    ["PATCH", `/api/entities/${alice}`, { displayName: "x" }],
    ["DELETE", `/api/entities/${bob}`],
    ["POST", "/api/smart-spaces", { name: "x" }],
    ["PATCH", `/api/smart-spaces/${mine}`, { name: "x" }],
    ["DELETE", `/api/smart-spaces/${mine}`],
    ["POST", `/api/smart-spaces/${mine}/members`, { entityId: bob }],
    ["PATCH", `/api/smart-spaces/${mine}/members/${alice}`, { role: "admin" }],
    ["DELETE", `/api/smart-spaces/${mine}/members/${bot}`],
    ["GET", "/api/runs"],
    ["POST", "/api/runs", { smartSpaceId: mine, agentEntityId: bot }],
    ["POST", `/api/runs/${myRun}/cancel`],
    ["DELETE", `/api/runs/${myRun}`],
    ["POST", `/api/runs/${myRun}/events`, { type: "text.delta", data: { delta: "forged" } }],
    ["POST", "/api/clients/register", { entityId: alice, clientKey: "k" }],
    ["GET", `/api/clients?entityId=${alice}`],
    ["DELETE", `/api/clients/${crypto.randomUUID()}`],
  ]) {
    await expect(method, path, A, 403, SECRET_ONLY, body);
  }
  await expectStream(`/api/entities/${alice}/stream`, A, 403, SECRET_ONLY);
  await expectStream(`/api/entities/${bob}/stream`, A, 403, SECRET_ONLY);

  // Nothing of that changed anything.
  const { members } = await admin.spaces.listMembers(mine);
  assert.deepEqual(members.map((m) => m.entityId).sort(), [alice, bot].sort());
  assert.equal((await admin.runs.get(myRun)).run.status, "queued");
  assert.equal((await admin.runs.getEvents(myRun)).events.length, 1);
  assert.equal((await admin.messages.list(theirs)).messages.length, 1);

  // The SDK surfaces the texts as HsafaApiError.
  const user = userClient("pm-alice");
  await assert.rejects(user.spaces.get(theirs), { name: "HsafaApiError", status: 403, message: NOT_MEMBER });
  await assert.rejects(user.runs.get(missingRun), { status: 403, message: NOT_MEMBER });
  await assert.rejects(user.agents.list(), { status: 403, message: SECRET_ONLY });
  // Impersonation through the SDK: the body's entityId is ignored, the list is her own.
  const sent = await user.messages.send(mine, { content: "as bob?", entityId: bob, triggerAgents: false });
  assert.equal(sent.message.entityId, alice);
  assert.deepEqual(
    (await user.spaces.list({ entityId: bob })).smartSpaces.map((s) => s.id),
    [mine],
  );
});

test("resume: a dropped space stream and a dropped entity stream get exactly the missed events with Last-Event-ID", async () => {
  const alice = await human("rs-alice");
  const spaceA = await space([alice], "a");
  const spaceC = await space([alice], "c");
  const post = (s, c) => admin.messages.send(s, { content: c, entityId: alice });

  // Space stream (pk + JWT), raw: the SSE id is the seq.
  const path = `/api/smart-spaces/${spaceA}/stream`;
  let sub = await rawStream(path, userHeaders("rs-alice"));
  assert.equal(sub.status, 200);
  for (const c of ["a0", "a1", "a2"]) await post(spaceA, c);
  const first = await take(sub.events, 3, (e) => e.data.type === "smartSpace.message");
  assert.deepEqual(first.map((e) => e.data.data.message.content), ["a0", "a1", "a2"]);
  const lastId = first[2].id;
  assert.equal(lastId, String(first[2].data.seq));
  sub.close();
  for (const c of ["b0", "b1", "b2", "b3"]) await post(spaceA, c);
  // Resume while more is being posted: nothing lost or repeated at the seam.
  const resumed = await rawStream(path, userHeaders("rs-alice"), lastId);
  const posting = (async () => {
    for (const c of ["c0", "c1", "c2"]) await post(spaceA, c);
  })();
  await posting;
  const got = await take(resumed.events, 7);
  assert.deepEqual(got.map((e) => e.data.data.message.content), ["b0", "b1", "b2", "b3", "c0", "c1", "c2"]);
  await sleep(300);
  assert.equal(resumed.events.length, 7, "nothing repeated, nothing extra");
  resumed.close();

  // Entity stream (secret key) through the SDK's own SSEStream, resumed the way an SDK user can: the
  // event.id it handed out, sent back as Last-Event-ID. The id is a cursor over all the entity's spaces.
  const url = `${server.url}/api/entities/${alice}/stream`;
  let es = new SSEStream({ url, headers: SECRET, reconnect: false });
  let seen = collect(es);
  await untilSubscribed(seen, spaceC, alice);
  await post(spaceA, "e0");
  await post(spaceC, "e1");
  await take(seen, 2, (e) => isMsg(e) && ["e0", "e1"].includes(e.data.message.content));
  await sleep(200);
  const cursor = seen.at(-1).id;
  assert.match(cursor, new RegExp(`${spaceA}:\\d+`));
  assert.match(cursor, new RegExp(`${spaceC}:\\d+`));
  es.close();
  // Missed: two in each space, and a space joined while away (its join and a message).
  await post(spaceA, "m0");
  await post(spaceC, "m1");
  await post(spaceA, "m2");
  await post(spaceC, "m3");
  const spaceD = await space([alice], "d");
  await post(spaceD, "m4");
  es = new SSEStream({ url, headers: { ...SECRET, "Last-Event-ID": cursor }, reconnect: false });
  seen = collect(es);
  try {
    await take(seen, 6);
    await sleep(400);
    const per = (s) => seen.filter((e) => e.smartSpaceId === s).map((e) => (isMsg(e) ? e.data.message.content : e.type));
    assert.deepEqual(per(spaceA), ["m0", "m2"]);
    assert.deepEqual(per(spaceC), ["m1", "m3"]);
    assert.deepEqual(per(spaceD), ["smartSpace.member.joined", "m4"]);
    assert.equal(seen.length, 6, "exactly the missed events");
    // The last cursor names all three spaces; resuming with it yields nothing old.
    const again = new SSEStream({ url, headers: { ...SECRET, "Last-Event-ID": seen.at(-1).id }, reconnect: false });
    const none = collect(again);
    await untilSubscribed(none, spaceD, alice);
    assert.deepEqual(
      none.filter((e) => !(isMsg(e) && e.data.message.content.startsWith("sync-"))).map((e) => e.type),
      [],
    );
    again.close();
  } finally {
    es.close();
  }

  // A Last-Event-ID that is not one of the stream's ids is a clear 400.
  const bad = await rawStream(path, userHeaders("rs-alice"), "yesterday");
  assert.equal(bad.status, 400);
  assert.equal(typeof bad.body.error, "string");
});

test("SDK clients: register (again refreshes), list by entity, delete", async () => {
  const alice = await human("cl-alice");
  const first = await admin.clients.register({
    entityId: alice,
    clientKey: "laptop",
    clientType: "browser",
    displayName: "Laptop",
    capabilities: { tools: ["clock"] },
  });
  const c = first.client;
  assert.deepEqual(
    [c.entityId, c.clientKey, c.clientType, c.displayName, c.capabilities],
    [alice, "laptop", "browser", "Laptop", { tools: ["clock"] }],
  );
  assert.ok(!Number.isNaN(Date.parse(c.lastSeenAt)) && !Number.isNaN(Date.parse(c.createdAt)));
  await sleep(5);
  const again = await admin.clients.register({ entityId: alice, clientKey: "laptop", displayName: "Work laptop" });
  assert.equal(again.client.id, c.id, "the same (entity, key) is the same client");
  assert.deepEqual([again.client.displayName, again.client.clientType], ["Work laptop", "browser"]);
  assert.ok(Date.parse(again.client.lastSeenAt) >= Date.parse(c.lastSeenAt));
  const phone = (await admin.clients.register({ entityId: alice, clientKey: "phone" })).client;
  assert.deepEqual(phone.capabilities, {});
  assert.deepEqual(
    (await admin.clients.list(alice)).clients.map((x) => x.clientKey),
    ["laptop", "phone"],
  );
  assert.deepEqual(await admin.clients.delete(c.id), { success: true });
  assert.deepEqual(
    (await admin.clients.list(alice)).clients.map((x) => x.id),
    [phone.id],
  );
  await assert.rejects(admin.clients.delete(c.id), { status: 404, message: "Client not found" });
  await assert.rejects(admin.clients.register({ entityId: crypto.randomUUID(), clientKey: "x" }), {
    status: 404,
    message: "Entity not found",
  });
  assert.equal((await call("GET", "/api/clients")).status, 400);
});

test("an oversized body is a 413 in the error shape the SDK reads, and a long message within the limit travels whole", async () => {
  const alice = await human("big-alice");
  const spaceId = await space([alice], "big");
  const stream = admin.spaces.subscribe(spaceId);
  const seen = collect(stream);
  try {
    await untilSubscribed(seen, spaceId, alice);
    const long = "x".repeat(600 * 1024);
    await admin.messages.send(spaceId, { content: long, entityId: alice });
    const [got] = await take(seen, 1, (e) => isMsg(e) && e.data.message.content.length === long.length, "the long message");
    assert.equal(got.data.message.content, long);
    await assert.rejects(admin.messages.send(spaceId, { content: "x".repeat(1100 * 1024), entityId: alice }), {
      name: "HsafaApiError",
      status: 413,
      message: "Request body is larger than 1048576 bytes",
    });
    assert.equal((await admin.messages.list(spaceId, { limit: 200 })).messages.filter((m) => m.content.length > 1000).length, 1);
  } finally {
    stream.close();
  }
});

test("100 concurrent posters to one space: seqs unique and gap-free, every subscriber sees them in seq order", async () => {
  const people = [];
  for (const n of ["cc-a", "cc-b", "cc-c", "cc-d"]) people.push(await human(n));
  const spaceId = await space(people, "busy");
  // Three subscribers: the SDK (pk + JWT), raw pk + JWT, raw secret key.
  const sdkStream = userClient("cc-a").spaces.subscribe(spaceId);
  const sdkSeen = collect(sdkStream);
  await untilSubscribed(sdkSeen, spaceId, people[0]);
  const rawUser = await rawStream(`/api/smart-spaces/${spaceId}/stream`, userHeaders("cc-b"));
  const rawSecret = await rawStream(`/api/smart-spaces/${spaceId}/stream`, SECRET);
  const base = Number((await admin.messages.list(spaceId, { limit: 200 })).messages.at(-1).seq);
  try {
    const posters = Array.from({ length: 100 }, (_, i) => {
      const name = ["cc-a", "cc-b", "cc-c", "cc-d"][i % 4];
      // Half as browser users (pk + JWT), half through the backend's secret key.
      return i % 2 === 0
        ? userClient(name).messages.send(spaceId, { content: `p${i}` })
        : admin.messages.send(spaceId, { content: `p${i}`, entityId: people[i % 4] });
    });
    const results = await Promise.all(posters);
    const seqs = results.map((r) => Number(r.message.seq)).sort((a, b) => a - b);
    assert.deepEqual(
      seqs,
      Array.from({ length: 100 }, (_, i) => base + 1 + i),
      "unique and gap-free",
    );
    const bySeq = new Map(results.map((r) => [r.message.seq, r.message.content]));
    const want = seqs.map((s) => bySeq.get(String(s)));

    const sdkMsgs = await take(sdkSeen, 100, (e) => isMsg(e) && e.data.message.content.startsWith("p"), "SDK messages");
    assert.deepEqual(sdkMsgs.map((e) => e.data.message.content), want, "SDK subscriber in seq order");
    for (const [who, s] of [
      ["raw user", rawUser],
      ["raw secret", rawSecret],
    ]) {
      const got = await take(s.events, 100, (e) => e.data.type === "smartSpace.message", who);
      assert.deepEqual(got.map(content), want, `${who} in seq order`);
      const eventSeqs = got.map((e) => e.data.seq);
      assert.ok(eventSeqs.every((v, i) => i === 0 || v === eventSeqs[i - 1] + 1), `${who}: event seqs gap-free`);
      assert.ok(got.every((e) => e.id === String(e.data.seq) && e.event === "hsafa"));
    }
    assert.equal((await admin.messages.list(spaceId, { limit: 200 })).messages.length, 100 + base);
  } finally {
    sdkStream.close();
    rawUser.close();
    rawSecret.close();
  }
});

test("a revoked membership and a deleted space end delivery at once", async () => {
  const alice = await human("rv-alice");
  const bob = await human("rv-bob");
  const spaceId = await space([alice, bob], "revoke");
  const other = await space([alice], "other");
  const aliceSpace = await rawStream(`/api/smart-spaces/${spaceId}/stream`, userHeaders("rv-alice"));
  const bobSpace = await rawStream(`/api/smart-spaces/${spaceId}/stream`, userHeaders("rv-bob"));
  const aliceEntity = await rawStream(`/api/entities/${alice}/stream`, SECRET);
  try {
    await admin.messages.send(spaceId, { content: "before", entityId: bob });
    for (const s of [aliceSpace, bobSpace, aliceEntity]) await take(s.events, 1, (e) => e.data.type === "smartSpace.message");

    const t0 = Date.now();
    await admin.spaces.removeMember(spaceId, alice);
    // Her space stream is ended by the server right away.
    await waitFor(() => aliceSpace.ended, "alice's space stream to end", 2000);
    const endedAfter = Date.now() - t0;
    assert.ok(endedAfter < 1000, `ended after ${endedAfter} ms`);
    await admin.messages.send(spaceId, { content: "after", entityId: bob });
    await admin.messages.send(other, { content: "elsewhere", entityId: alice });
    await take(bobSpace.events, 1, (e) => e.data.type === "smartSpace.message" && content(e) === "after");
    // Her entity stream stays open for her other spaces but gets nothing more from this one.
    await take(aliceEntity.events, 1, (e) => e.data.type === "smartSpace.message" && content(e) === "elsewhere");
    const fromRevoked = aliceEntity.events.filter((e) => e.data.smartSpaceId === spaceId && e.data.type === "smartSpace.message");
    assert.deepEqual(fromRevoked.map(content), ["before"]);
    assert.equal(aliceSpace.events.filter((e) => e.data.type === "smartSpace.message").length, 1);
    // And she can no longer reopen it.
    assert.equal((await rawStream(`/api/smart-spaces/${spaceId}/stream`, userHeaders("rv-alice"))).status, 403);

    await admin.spaces.delete(spaceId);
    await waitFor(() => bobSpace.ended, "bob's space stream to end when the space is deleted", 2000);
    assert.equal(aliceEntity.ended, false);
  } finally {
    aliceSpace.close();
    bobSpace.close();
    aliceEntity.close();
  }
});

test("space stream start points: since=$ is live, since=<ms>, a Redis-style id, afterSeq; bad since is a 400", async () => {
  const alice = await human("sp-alice");
  const spaceId = await space([alice], "since");
  await admin.messages.send(spaceId, { content: "old", entityId: alice });
  await sleep(20);
  const cut = Date.now();
  await sleep(20);
  await admin.messages.send(spaceId, { content: "new", entityId: alice });
  const path = `/api/smart-spaces/${spaceId}/stream`;
  const streams = {
    live: await rawStream(`${path}?since=%24`, SECRET),
    ms: await rawStream(`${path}?since=${cut}`, SECRET),
    redis: await rawStream(`${path}?since=${cut}-0`, SECRET),
    iso: await rawStream(`${path}?since=${encodeURIComponent(new Date(cut).toISOString())}`, SECRET),
    after: await rawStream(`${path}?afterSeq=2`, SECRET),
  };
  try {
    await admin.messages.send(spaceId, { content: "live", entityId: alice });
    const want = { live: ["live"], ms: ["new", "live"], redis: ["new", "live"], iso: ["new", "live"], after: ["new", "live"] };
    for (const [name, s] of Object.entries(streams)) {
      assert.equal(s.status, 200, name);
      const got = await take(s.events, want[name].length, (e) => e.data.type === "smartSpace.message", name);
      assert.deepEqual(got.map(content), want[name], name);
    }
    await sleep(200);
    for (const [name, s] of Object.entries(streams)) {
      assert.equal(s.events.filter((e) => e.data.type === "smartSpace.message").length, want[name].length, name);
    }
    assert.ok(streams.live.comments[0].startsWith(":"), "a comment opens the stream");
  } finally {
    for (const s of Object.values(streams)) s.close();
  }
  const bad = await rawStream(`${path}?since=yesterday`, SECRET);
  assert.equal(bad.status, 400);
  assert.match(bad.body.error, /since/);
});

test("a shutdown cuts open streams at once, so the SDK reconnects instead of holding the shutdown", async () => {
  const own = await startServer({ env: { HSAFA_SECRET_KEY: SK, HSAFA_PUBLIC_KEY: PK, JWT_SECRET } });
  const client = new HsafaClient({ gatewayUrl: own.url, secretKey: SK });
  const { smartSpace } = await client.spaces.create({ name: "shutdown" });
  const stream = client.spaces.subscribe(smartSpace.id);
  const errors = [];
  stream.on("error", (e) => errors.push(e.data.error));
  try {
    const seen = collect(stream);
    const { entity } = await client.entities.create({ type: "system" });
    await client.spaces.addMember(smartSpace.id, { entityId: entity.id });
    await waitFor(() => seen.length > 0, "the stream to deliver");
    const t0 = Date.now();
    await own.stop();
    const took = Date.now() - t0;
    // The harness sends SIGTERM and falls back to SIGKILL after 3 s; the shutdown timeout is 30 s.
    assert.ok(took < 2000, `stopped after ${took} ms`);
    // An error (not a clean end), which is what makes the SDK's SSEStream schedule a reconnect.
    await waitFor(() => errors.length > 0, "the SDK stream to report the cut", 3000);
  } finally {
    stream.close();
    await own.stop();
  }
});
