"""The read paths: Close objects as pages of raw API objects (lists, the export, the Event
Log, by id), and read-backs of what earlier runs loaded."""
