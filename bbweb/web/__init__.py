"""The web side: one blueprint per URL family (mounted by :mod:`bbweb.web.blueprints`), and
what the blueprints share."""
