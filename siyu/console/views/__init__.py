"""Console views: transport only. Each parses input, calls one selector or service, and renders a template."""
