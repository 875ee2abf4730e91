// The identity graph of one person, from `identityHistory` and `merges`, drawn with cytoscape.
// Users are boxes (an absorbed user inside its survivor); identities are nodes coloured by
// channel; each link is an edge labelled with its rule, source and time.
(function () {
  "use strict";

  var FONT = 'system-ui, "WenQuanYi Micro Hei", "Noto Sans CJK SC", "PingFang SC", sans-serif';
  var CHANNEL_COLOURS = { MINI_PROGRAM: "#07a35a", OFFICIAL_ACCOUNT: "#2f6fde", APP: "#e07b00", NONE: "#7b8794" };

  function when(iso) {
    return iso ? iso.replace("T", " ").slice(0, 16) : "";
  }

  function short(text, max) {
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  function shortValue(value) {
    return value.length > 16 ? value.slice(0, 7) + "…" + value.slice(-5) : value;
  }

  function keyOf(e) {
    return e.kind + "|" + (e.namespace || "") + "|" + e.value;
  }

  // Who is linked to whom, by which rule and when; which merges made the person.
  function model(user) {
    var channels = {};
    user.identities.forEach(function (i) { channels[keyOf(i)] = i.channel || "NONE"; });
    var users = {};
    var merges = {};
    users[user.id] = true;
    user.merges.forEach(function (m) { merges[m.id] = m; users[m.survivorId] = true; users[m.absorbedId] = true; });
    var identities = {};
    user.identityHistory.forEach(function (e) {
      users[e.userId] = true;
      var k = keyOf(e);
      var node = identities[k] || (identities[k] = { key: k, kind: e.kind, namespace: e.namespace, value: e.value,
        channel: channels[k] || (e.kind === "APP_USER_ID" ? "APP" : "NONE"), link: null, closed: false, verified: false, returnedBy: null, events: [] });
      node.events.push(e);
      if (e.action === "link") { node.link = e; node.closed = false; node.returnedBy = null; }
      if (e.action === "unlink") node.closed = true;
      // Moved by a merge that was undone since: the identity is back with the absorbed user.
      if (e.action === "merge" || e.action === "unmerge") {
        var m = merges[e.mergeId];
        node.returnedBy = m && m.undoneAt ? m : null;
      }
      if (e.action === "verify") node.verified = true;
    });
    var parents = {};
    user.merges.forEach(function (m) { if (!m.undoneAt) parents[m.absorbedId] = m.survivorId; });
    return { root: user.id, users: Object.keys(users), parents: parents, merges: user.merges,
      identities: Object.keys(identities).map(function (k) { return identities[k]; }) };
  }

  function elements(g) {
    var els = [];
    g.users.forEach(function (id) {
      var merged = g.merges.filter(function (m) { return m.absorbedId === id && !m.undoneAt; })[0];
      var label = "User " + id + (id === g.root ? "" : merged ? " · merged in #" + merged.id : "");
      els.push({ group: "nodes", classes: "user" + (id === g.root ? " root" : ""),
        data: { id: "u" + id, label: label, parent: g.parents[id] ? "u" + g.parents[id] : undefined,
          detail: label + (merged ? "\nabsorbed by user " + merged.survivorId + " at " + when(merged.at) : "") } });
    });
    g.identities.forEach(function (i, n) {
      var id = "i" + n;
      var title = i.kind + (i.namespace ? " · " + i.namespace : "");
      els.push({ group: "nodes", classes: "identity " + i.channel + (i.closed ? " closed" : ""),
        data: { id: id, label: i.kind + (i.verified ? " ✓" : "") + "\n" + shortValue(i.value),
          detail: title + "\n" + i.value + "\nchannel: " + i.channel + (i.verified ? "\nverified by the person" : "") +
            "\n" + i.events.map(function (e) {
              return when(e.at) + "  " + e.action + " → user " + e.userId + "  (" + e.rule + ": " + e.source + ", by " + e.actor + ")";
            }).join("\n") } });
      var link = i.link || i.events[0];
      var back = i.returnedBy;
      var label = (i.closed ? "closed · " : back ? "back after unmerge #" + back.id + " · " : "") + link.rule + " · " +
        when(link.at) + "\n" + short(link.source, 34);
      els.push({ group: "edges", classes: "link" + (i.closed ? " closed" : back ? " returned" : ""),
        data: { id: "l" + n, source: "u" + (back ? back.absorbedId : link.userId), target: id, label: label,
          detail: (i.closed ? "closed link\n" : "link\n") + "rule: " + link.rule + "\nsource: " + link.source +
            "\nwhen: " + when(link.at) + "\nby: " + link.actor } });
    });
    g.merges.forEach(function (m) {
      if (!m.undoneAt) return; // an active merge is the box it draws
      els.push({ group: "edges", classes: "merge undone",
        data: { id: "m" + m.id, source: "u" + m.absorbedId, target: "u" + m.survivorId,
          label: "merge #" + m.id + " undone " + when(m.undoneAt),
          detail: "merge #" + m.id + ": user " + m.absorbedId + " into user " + m.survivorId + " at " + when(m.at) +
            "\nundone at " + when(m.undoneAt) } });
    });
    return els;
  }

  var STYLE = [
    { selector: "node", style: { "font-family": FONT, "font-size": 12, color: "#1f2933", label: "data(label)",
      "text-wrap": "wrap", "text-valign": "center", "text-halign": "center" } },
    { selector: "node.user", style: { shape: "round-rectangle", height: 34,
      width: function (n) { return Math.max(70, n.data("label").length * 7 + 18); }, "background-color": "#fff",
      "border-width": 2, "border-color": "#14202e", "font-weight": "bold" } },
    { selector: "node.user:parent", style: { "text-valign": "top", "text-halign": "center", "text-margin-y": 20, "background-color": "#eef3f8",
      "background-opacity": 0.7, padding: 30, "border-style": "solid" } },
    { selector: "node.identity", style: { shape: "round-rectangle", width: 118, height: 38, color: "#fff",
      "font-size": 11, "background-color": CHANNEL_COLOURS.NONE } },
    { selector: "node.MINI_PROGRAM", style: { "background-color": CHANNEL_COLOURS.MINI_PROGRAM } },
    { selector: "node.OFFICIAL_ACCOUNT", style: { "background-color": CHANNEL_COLOURS.OFFICIAL_ACCOUNT } },
    { selector: "node.APP", style: { "background-color": CHANNEL_COLOURS.APP } },
    { selector: "node.closed", style: { "background-opacity": 0.35, color: "#1f2933", "border-width": 1,
      "border-style": "dashed", "border-color": "#65707d" } },
    { selector: "edge", style: { "font-family": FONT, "font-size": 10, label: "data(label)", "text-wrap": "wrap",
      "curve-style": "bezier", width: 1.5, "line-color": "#8a96a3", "target-arrow-shape": "triangle",
      "target-arrow-color": "#8a96a3", "text-background-color": "#fff", "text-background-opacity": 0.85,
      "text-background-padding": 2, color: "#33414f" } },
    { selector: "edge.closed, edge.undone", style: { "line-style": "dashed", "line-color": "#c2c9d1", color: "#65707d" } },
    { selector: "edge.returned", style: { "line-style": "dotted" } },
    { selector: "edge.merge", style: { "target-arrow-shape": "none", "line-color": "#c62828" } },
    { selector: ":selected", style: { "border-width": 3, "border-color": "#0b6bcb", "line-color": "#0b6bcb" } },
  ];

  function draw(container, user, onDetail) {
    var g = model(user);
    var cy = cytoscape({
      container: container,
      elements: elements(g),
      style: STYLE,
    });
    // Users in the middle, identities around them; a survivor's box wraps what it absorbed.
    cy.elements().not(":parent").layout({
      name: "concentric",
      concentric: function (n) { return n.hasClass("user") ? 2 : 1; },
      levelWidth: function () { return 1; },
      minNodeSpacing: 70,
      animate: false,
      padding: 24,
    }).run();
    cy.fit(undefined, 24);
    cy.on("tap", "node, edge", function (evt) { onDetail(evt.target.data("detail")); });
    return { cy: cy, model: g, text: describe(cy) };
  }

  // The same graph as lines of text: for screen readers, search in the page, and the tests.
  function describe(cy) {
    var lines = [];
    cy.nodes(".user").forEach(function (n) {
      lines.push(n.data("label") + (n.isParent() ? " — holds " + n.children().map(function (c) { return c.data("label"); }).join(", ") : ""));
    });
    cy.edges().forEach(function (e) {
      lines.push(e.source().data("label").split("\n")[0] + " → " + e.target().data("label").replace("\n", " ") + ": " + e.data("label").replace("\n", " — "));
    });
    return lines;
  }

  window.TroikaGraph = { draw: draw, model: model, when: when, shortValue: shortValue };
})();
