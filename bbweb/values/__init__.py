"""Plain values every layer shares: build result codes (:mod:`.results`) and what a value
must be to enter the status database (:mod:`.validation`). Nothing here imports the rest of
bbweb."""
