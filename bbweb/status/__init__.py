"""The read side: status objects and the queries pages and notifiers share."""
