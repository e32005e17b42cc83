"""Pictures of graphs: a plain-data view model, the interactive HTML view and the static SVG."""
