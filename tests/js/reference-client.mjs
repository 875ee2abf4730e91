// The reference graphql-transport-ws client (graphql-ws on the `ws` WebSocket) against a running
// Troika: a query, a subscription replayed from a cursor, and a refused operation, over one socket.
// Usage: node reference-client.mjs <ws-url> <token> <cursor> <n-events>
// Prints one JSON line: what each operation received and how many text and binary frames came.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, token, after, wanted] = process.argv.slice(2);
const frames = { text: 0, binary: 0 };

// ws tells each frame's kind; graphql-ws itself refuses a binary frame (no `type` in a Buffer).
class CountingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.on("message", (_data, isBinary) => {
      frames[isBinary ? "binary" : "text"] += 1;
    });
  }
}

const client = createClient({
  url,
  webSocketImpl: CountingWebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  retryAttempts: 0,
  lazy: false,
  onNonLazyError: (error) => fail(error),
});

function fail(error) {
  const text = error instanceof Error ? error.message : JSON.stringify(error);
  process.stderr.write(`reference client failed: ${text}\n`);
  process.exit(1);
}

async function first(payload) {
  for await (const result of client.iterate(payload)) {
    return result;
  }
  throw new Error("the operation completed without a result");
}

async function events(payload, count) {
  const received = [];
  const subscription = client.iterate(payload);
  for await (const result of subscription) {
    received.push(result);
    if (received.length >= count) break; // `break` sends `complete`
  }
  return received;
}

async function refused(payload) {
  try {
    await first(payload);
  } catch (errors) {
    return errors; // graphql-ws rejects with the `error` message's payload (GraphQL errors)
  }
  throw new Error("an operation that should be refused was answered");
}

const timer = setTimeout(() => fail(new Error("no answer within 20 s")), 20000);
try {
  const query = await first({ query: "{ __typename }" });
  const changes = await events(
    {
      query: "subscription ($after: String) { changes(after: $after) { userId topic cursor } }",
      variables: { after },
    },
    Number(wanted),
  );
  const error = await refused({ query: "subscription { noSuchField }" });
  console.log(JSON.stringify({ query, changes, error, frames }));
} catch (error) {
  fail(error);
} finally {
  clearTimeout(timer);
  await client.dispose();
}
