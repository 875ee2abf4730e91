"""The HTTP surface of GraphQL: negotiation, request bodies, the view (GraphQL over HTTP spec)."""
