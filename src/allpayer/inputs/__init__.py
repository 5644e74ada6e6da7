"""Input data contract, readers, validation and quarantine."""
