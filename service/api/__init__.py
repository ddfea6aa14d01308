"""HTTP routers, one per resource; handlers parse, delegate and answer."""
