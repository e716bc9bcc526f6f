"""Lake tables as code; the default local lake lives in ``warehouse/lake`` (git-ignored)."""
