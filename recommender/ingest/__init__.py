"""Everything that writes the catalogue and behaviour: events, file importers,
presets, privacy (export and forget), input limits."""
