"""API objects -> rows with typed, human-named custom columns -> Arrow tables with dlt hints."""
