// Troika's GraphiQL: everything from this origin; the key pasted in the Headers tab goes with
// every request and, as connection_init's payload, with every subscription.
(function () {
  "use strict";
  var EXAMPLE =
    "# Paste your operator key in the Headers tab below:\n" +
    '#   {"Authorization": "Bearer trk_op_…"}\n' +
    "# then run (Ctrl-Enter) this query for a demo customer.\n" +
    "\n" +
    '{ user(identity: {kind: PHONE, value: "+8613800000001"}) { id identities { kind namespace value linkedBy } } }\n';
  var url = window.location.origin + window.location.pathname;
  // A link may carry a query: /graphql?q=… (not ?query=, which asks the server to run it).
  var shared = new URLSearchParams(window.location.search).get("q");
  var ws = new URL(url);
  ws.protocol = ws.protocol === "https:" ? "wss:" : "ws:";
  var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: ws.toString() });
  var explorer = GraphiQLPluginExplorer.explorerPlugin();
  function App() {
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: EXAMPLE,
      query: shared || undefined,
      defaultEditorToolsVisibility: "headers",
      plugins: [explorer],
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      inputValueDeprecation: true,
    });
  }
  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(App));
})();
