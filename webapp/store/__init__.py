"""The Redis data layer: key names, Lua scripts, job records and reads, events, listing,
admission, metrics counters. No Flask, no HTTP: the service, the web, the CLI and the workers
all read and write Redis through here."""
