"""Configuration and schema: manifests read, validated and filled into a ``RunConfig``; the JSON Schema of them."""
