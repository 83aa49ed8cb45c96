"""The SSRF guard: `rules` (which URLs and addresses we accept) and `transport` (requests pinned to
the vetted address). Import the submodule you need: the rules load no HTTP client."""
