"""What each `edgemem` command does, above every pipeline stage (the CLI is a thin layer over these)."""
