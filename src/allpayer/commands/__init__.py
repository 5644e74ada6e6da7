"""CLI command groups. Each module exposes `register(app)`; `allpayer.cli` wires them in."""
