"""Files written headless: `stepviz export` (run_export), `stepviz grid` (seed_grid), the TUI's strip (strip),
with their manifest, handout and output-folder rules. Each module is imported by what it needs."""
