"""The ready lessons (scenario TOML files), shipped inside the package: `stepviz scenarios` lists them."""
